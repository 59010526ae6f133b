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

route "no_attempts" {
  source  = "in"
  targets = ["out"]
  retry {
    attempts = 0
  }
}

route "inverted" {
  source  = "in"
  targets = ["out"]
  retry {
    backoff     = "1m"
    max_backoff = "10s"
  }
}

route "above_default_max" {
  source  = "in"
  targets = ["out"]
  retry {
    backoff = "45s"
  }
}

route "labelled" {
  source  = "in"
  targets = ["out"]
  retry "fast" {
    attempts = 2
  }
}

route "nowhere" {
  source = "in"
  match  = []
}
