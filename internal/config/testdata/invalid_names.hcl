cluster "" {
  url = "amqp://localhost/"
}

source "" {
  cluster  = ""
  exchange = "e"
  queue    = "q"
}

route "r" "extra" {
  source = "in"
}

target {
  cluster  = "main"
  exchange = "x"
}
