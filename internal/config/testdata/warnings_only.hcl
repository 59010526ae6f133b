# Loads, with warnings.
cluster "main" {
  url = "amqp://localhost/"
  tls {
    ca_file = "ca.pem"
  }
}

source "in" {
  cluster        = "main"
  exchange       = "events"
  queue          = "q"
  queue_type     = "quorum"
  delivery_limit = 3
  bindings       = []
}

route "r" {
  source = "in"
  match  = []
}
