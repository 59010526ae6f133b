module "zero_timeout" {
  path    = "a.wasm"
  timeout = "0ms"
}

module "pools" {
  path      = "b.wasm"
  pool_size = 0
}

module "big_pool" {
  path      = "c.wasm"
  pool_size = 65
}

module "config_types" {
  path   = "d.wasm"
  config = { ok = "x", n = 3, flag = true, list = ["a"], ok = "again" }
}

module "config_computed" {
  path   = "e.wasm"
  config = merge({ a = "1" }, { b = false })
}

module "config_not_map" {
  path   = ""
  config = "key=value"
}
