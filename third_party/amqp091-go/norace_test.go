//go:build !race

package amqp091

const raceEnabled = false
