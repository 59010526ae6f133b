cluster "main" {
  url = "amqp://router:hunter2-syntax@localhost/\q"
}

source "in" {
  cluster  = "main"
  exchange = "ev\ents"
  queue    = "q"
}

target "t" {
  cluster  = "main"
  exchange = "x" "y"
}

module "m" {
  path = "m.wasm"
}
