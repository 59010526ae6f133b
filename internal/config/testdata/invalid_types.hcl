# Values of the wrong type, each reported where it is written.
cluster "main" {
  url = 5672
}

cluster "list" {
  url = ["amqp://user:hunter2-types@localhost/"]
}

source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "q"
  bindings = "order.*"
  prefetch = "many"
}

source "half" {
  cluster  = "main"
  exchange = "events"
  queue    = "half"
  prefetch = 2.5
  bindings = ["ok.#", { word = "x" }, null]
}

target "out" {
  cluster  = ["main"]
  exchange = "out"
}

route "r" {
  source  = "in"
  targets = "out"
  match   = [["nested"]]
}

test "t" {
  input {
    source  = "in"
    headers = { tenant = "acme", flags = ["a"], ok = true }
    body    = { amount = 5 }
  }
  expect {
    headers = "tenant=acme"
  }
}
