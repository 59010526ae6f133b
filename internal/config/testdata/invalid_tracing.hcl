cluster "main" {
  url = "amqp://localhost/"
}

source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "q"
}

tracing {
  endpoint     = "localhost:4318"
  protocol     = "http/json"
  sample_ratio = 1.5
  service_name = ["x"]
}

tracing {
  endpoint = "http://collector:4318"
}
