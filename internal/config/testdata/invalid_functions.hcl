# env() without a default needs the variable; file() needs the file.
router {
  admin_token = env("ROUTER_ADMIN_TOKEN")
}

cluster "main" {
  url = env("AMQP_URL", "amqp://localhost/", "extra")
}

source "in" {
  cluster  = "main"
  exchange = file("missing.txt")
  queue    = file("secrets")
}

module "m" {
  path   = "m.wasm"
  config = { key = envv("API_KEY"), other = file("../no/such/dir/x") }
}

route "r" {
  source  = "in"
  targets = []
  handler = lower(upper("m"), 1)
}

test "t" {
  input {
    source = "in"
    body   = jsonencode(unknown.value)
  }
  expect {}
}
