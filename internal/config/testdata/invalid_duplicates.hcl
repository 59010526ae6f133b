# Duplicate names are reported at the second block's label.
router {}

router {
  log_level = "debug"
}

store {}

store {}

cluster "main" {
  url = "amqp://localhost/"
}

cluster "main" {
  url = "amqp://other/"
}

source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "q1"
}

source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "q2"
}

target "x" {
  cluster  = "main"
  exchange = "x"
}

target "x" {
  cluster  = "main"
  exchange = "y"
}

module "m" {
  path = "m.wasm"
}

module "m" {
  path = "m2.wasm"
}

route "r" {
  source  = "in"
  targets = ["x", "x"]
  retry {}
  retry {}
}

route "r" {
  source  = "in"
  targets = ["x"]
}

test "t" {
  input {
    source = "in"
  }
  input {
    source = "in"
  }
  expect {}
}

test "t" {
  input {
    source = "in"
  }
  expect {}
}
