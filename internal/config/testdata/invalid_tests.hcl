cluster "main" {
  url = "amqp://localhost/"
}

source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "q"
}

source "other" {
  cluster  = "main"
  exchange = "other"
  queue    = "q2"
}

target "out" {
  cluster  = "main"
  exchange = "out"
}

route "r" {
  source  = "in"
  targets = ["out"]
}

test "no blocks" {
}

test "wrong source" {
  input {
    source      = "other"
    routing_key = "a"
  }
  expect {
    route   = "r"
    targets = ["out", "out"]
  }
}

test "bad expect" {
  input {
    source = "in"
    extra  = 1
  }
  expect {
    route   = "missing"
    body    = 42
    headers = { a = { b = "c" } }
  }
}
