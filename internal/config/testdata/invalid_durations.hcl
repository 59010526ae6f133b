# Durations are Go durations; negative ones are invalid, and some must be positive.
store {
  retention = "1 week"
}

cluster "main" {
  url = "amqp://localhost/"
}

module "m" {
  path    = "m.wasm"
  timeout = "0s"
}

module "n" {
  path    = "n.wasm"
  timeout = 100
}

route "r" {
  source  = "in"
  targets = []
  handler = "m"
  retry {
    backoff     = "-1s"
    max_backoff = "forever"
  }
}

source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "q"
}
