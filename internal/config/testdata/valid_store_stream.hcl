store {
  backend   = "stream"
  cluster   = "main"
  stream    = "orders.log"
  takeover  = "30s"
  retention = "2d"
  max_size  = "20GiB"
  stream_port = 5553
}

cluster "main" {
  url = "amqp://localhost/"
}

source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "q"
}

target "out" {
  cluster  = "main"
  exchange = "out"
}

route "r" {
  source  = "in"
  targets = ["out"]
}
