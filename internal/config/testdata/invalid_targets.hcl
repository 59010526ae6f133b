# A target has cluster or clusters, never both; mode goes with clusters only.
cluster "main" {
  url = "amqp://localhost/"
}

cluster "dr" {
  url = "amqp://dr/"
}

target "both" {
  cluster  = "main"
  clusters = ["main", "dr"]
  mode     = "all"
  exchange = "x"
}

target "neither" {
  exchange = "x"
}

target "single_with_mode" {
  cluster  = "main"
  mode     = "failover"
  exchange = "x"
}

target "no_mode" {
  clusters = ["main", "dr"]
  exchange = "x"
}

target "empty" {
  clusters = []
  mode     = "all"
  exchange = ""
}

target "repeated" {
  clusters = ["main", "dr", "main"]
  mode     = "failover"
  exchange = "x"
}
