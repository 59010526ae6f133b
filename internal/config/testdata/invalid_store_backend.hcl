store {
  backend  = "kafka"
  cluster  = "main"
  stream   = "wasmrouter.log"
  takeover = "15s"
}

store {
  backend  = "stream"
  takeover = "2s"
}

cluster "main" {
  url = "amqp://localhost/"
}

source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "q"
}
