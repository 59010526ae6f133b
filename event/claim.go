package event

// PairClaim is one router's claim on a (route, target) pair of a log that several routers
// share: the router delivers the pair once Granted is closed and must stop when Lost is closed;
// another router then takes the pair over from its cursor.
type PairClaim interface {
	Granted() <-chan struct{}
	Lost() <-chan struct{}
}
