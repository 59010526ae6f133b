# URLs may hold passwords: no diagnostic may show one.
cluster "http" {
  url = "http://admin:hunter2-http@rabbit.example/"
}

cluster "unparsable" {
  url = "amqp://admin:hunter2-port@rabbit.example:notaport/"
}

cluster "no_scheme" {
  url = "admin:hunter2-noscheme@rabbit.example"
}

cluster "spaces" {
  url = "amqp://admin:hunter2 spaces@rabbit.example/"
}

cluster "converted" {
  url = tonumber("amqp://admin:hunter2-tonumber@rabbit.example/")
}

cluster "heartbeat" {
  url = "amqp://admin:hunter2-heartbeat@rabbit.example/?heartbeat=fast"
}

cluster "plain_tls" {
  url = "amqp://admin:hunter2-plain@rabbit.example/"
  tls {
    ca_file   = "ca.pem"
    cert_file = "client.pem"
  }
}

cluster "from_env" {
  url = env("CLUSTER_URL_UNSET")
}

cluster "two_tls" {
  url = "amqps://rabbit.example/"
  tls {}
  tls {}
}

cluster "port_too_big" {
  url = "amqp://admin:hunter2-bigport@rabbit.example:99999/"
}

cluster "port_zero" {
  url = "amqp://admin:hunter2-zeroport@rabbit.example:0/"
}
