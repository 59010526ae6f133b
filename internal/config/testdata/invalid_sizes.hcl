# Sizes take KB/MB/GB (powers of 1000) or KiB/MiB/GiB (powers of 1024).
router {
  max_message_size = "1GiB"
}

store {
  max_size = "10 gigabytes"
}

module "m" {
  path       = "m.wasm"
  max_memory = "1KiB"
}

module "n" {
  path       = "n.wasm"
  max_memory = "1.5B"
}

module "o" {
  path       = "o.wasm"
  max_memory = "-64MiB"
}

module "p" {
  path       = "p.wasm"
  max_memory = "8GiB"
}
