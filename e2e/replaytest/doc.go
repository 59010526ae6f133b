// Package replaytest holds end-to-end tests of replay, log inspection and dead-letter redrive:
// a router runs in-process against a real RabbitMQ broker and the command line is driven
// in-process too. The tests are skipped under -short.
package replaytest
