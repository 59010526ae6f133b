// Package tracingtest holds end-to-end tests of trace context and spans: a router runs
// in-process against the real RabbitMQ broker and exports to an OTLP/HTTP collector inside the
// test; a Celery publisher and worker (Debian's python3-celery) check the thread survives the
// hop. The tests are skipped under -short.
package tracingtest
