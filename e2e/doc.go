// Package e2e holds the end-to-end tests of the router against a real RabbitMQ broker: the
// appliance runs in-process (internal/app) or as the built binary, and the tests check what
// arrives at the target exchanges, what the event log holds and what the admin API reports.
// The broker URL comes from WASMROUTER_AMQP_URL; the tests are skipped under -short. They do
// not run in parallel: some of them close broker connections.
package e2e
