# Required arguments, blocks and labels that are missing.
cluster "main" {
}

source "in" {
  cluster = "main"
}

target "out" {
  exchange = "out"
}

module "m" {
  timeout = "1s"
}

route "r" {
  targets = ["out"]
}

test "t" {
  expect {
    targets = []
  }
}

test "u" {
  input {
    routing_key = "a.b"
  }
  expect {}
}

cluster {
  url = "amqp://localhost/"
}

cluster "nullish" {
  url = null
}
