# Unknown block types and arguments, at every level.
routr {
  log_level = "info"
}

router {
  admin_adr = "127.0.0.1:9464"
  verbose   = true
}

cluster "main" {
  url      = "amqp://localhost/"
  password = "hunter2-unknown"
  ssl {
    ca_file = "ca.pem"
  }
}

source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "q"
  binding  = ["#"]
}

route "r" {
  source  = "in"
  targets = []
  handler = ""
  retry {
    attempts = 2
    jitter   = true
  }
}

timeout = "5s"
