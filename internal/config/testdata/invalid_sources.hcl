# Queue settings: prefetch range, quorum-only settings, shared queues.
cluster "main" {
  url = "amqp://localhost/"
}

source "classic_limit" {
  cluster              = "main"
  exchange             = "events"
  queue                = "q1"
  delivery_limit       = 5
  dead_letter_exchange = "dlx"
}

source "quorum_no_dlx" {
  cluster        = "main"
  exchange       = "events"
  queue          = "q2"
  queue_type     = "quorum"
  delivery_limit = 3
}

source "prefetch_zero" {
  cluster  = "main"
  exchange = "events"
  queue    = "q3"
  prefetch = 0
}

source "prefetch_huge" {
  cluster  = "main"
  exchange = ""
  queue    = "q4"
  prefetch = 70000
  bindings = []
}

source "same_queue" {
  cluster  = "main"
  exchange = "other"
  queue    = "q1"
}

source "negative_limit" {
  cluster        = "main"
  exchange       = "events"
  queue          = "q5"
  queue_type     = "quorum"
  delivery_limit = -1
}
