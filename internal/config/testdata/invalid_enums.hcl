router {
  log_level  = "verbose"
  log_format = "xml"
}

store {
  on_full = "drop_newest"
}

cluster "main" {
  url = "amqp://localhost/"
}

source "in" {
  cluster    = "main"
  exchange   = "events"
  queue      = "q"
  queue_type = "stream"
}

target "both" {
  clusters = ["main"]
  mode     = "single"
  exchange = "x"
}
