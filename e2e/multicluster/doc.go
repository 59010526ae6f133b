// Package multicluster tests the router end to end with targets and sources on several
// RabbitMQ clusters: the machine's broker and a second node the tests start
// (internal/testutil/rabbitnode), with TCP proxies in front of clusters to cut and restore
// their network. Every test is an integration test, skipped under -short. Benchmarks of the
// same set-up run only with WASMROUTER_BENCH=1.
package multicluster
