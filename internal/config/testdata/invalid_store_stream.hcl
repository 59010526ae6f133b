store {
  backend  = "stream"
  cluster  = "mian"
  stream   = "amq.log"
  takeover = "15 seconds"
  path     = "data/router.db"
  on_full  = "drop_oldest"
  stream_port = 70000
}

cluster "main" {
  url = "amqp://localhost/"
}

source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "q"
}
