package stream

import (
	"sync"
	"testing"
)

// Patched (third_party/rabbitmq-stream-go-client/README.md): a response the frame reader
// delivers after the coordinator closed it is dropped, not sent on a closed channel.
func TestAResponseDeliveredAfterCloseIsDropped(t *testing.T) {
	c := NewCoordinator()
	r := c.NewResponse(commandDeclarePublisher)
	c.Close()
	r.deliverCode(Code{id: responseCodeOk})
	r.deliverData("late")
	if _, ok := <-r.code; ok {
		t.Fatal("a code was delivered to a closed response")
	}
}

// Close and the reader's deliveries race in the router when a lost connection closes the
// environment while responses are still arriving; run with -race.
func TestCloseRacingDeliveriesNeitherPanicsNorRaces(t *testing.T) {
	for i := 0; i < 200; i++ {
		c := NewCoordinator()
		r := c.NewResponse(commandDeclarePublisher)
		id := r.correlationid
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			c.Close()
		}()
		go func() {
			defer wg.Done()
			if res, err := c.GetResponseById(uint32(id)); err == nil {
				res.deliverCode(Code{id: responseCodeOk})
				res.deliverData(nil)
			}
			_ = c.RemoveResponseById(id)
		}()
		wg.Wait()
	}
}

// A response that is not closed still gets what the reader delivers.
func TestAResponseGetsItsCodeAndData(t *testing.T) {
	c := NewCoordinator()
	r := c.NewResponse(commandDeclarePublisher)
	r.deliverCode(Code{id: responseCodeOk})
	r.deliverData(7)
	if code := <-r.code; code.id != responseCodeOk {
		t.Fatalf("code %d, want %d", code.id, responseCodeOk)
	}
	if d := <-r.data; d != 7 {
		t.Fatalf("data %v, want 7", d)
	}
}
