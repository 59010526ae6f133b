package rabbit

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os/exec"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// AddUser creates a broker user with a random password and full permissions on the test
// virtual host, deleted when the test ends, and returns the broker URL that logs in as it.
// Errors never show the password.
func AddUser(t testing.TB, name string) string {
	t.Helper()
	secret := make([]byte, 12)
	_, _ = rand.Read(secret)
	password := hex.EncodeToString(secret)
	uri, err := amqp.ParseURI(URL())
	if err != nil {
		t.Fatalf("rabbit: WASMROUTER_AMQP_URL does not parse: %v", err)
	}
	// The command's output is not shown: it could echo the password.
	if err := exec.Command("rabbitmqctl", "add_user", name, password).Run(); err != nil {
		t.Fatalf("rabbit: rabbitmqctl add_user %s: %v", name, err)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("rabbitmqctl", "delete_user", name).CombinedOutput(); err != nil {
			t.Errorf("rabbit: rabbitmqctl delete_user %s: %v\n%s", name, err, out)
		}
	})
	rabbitmqctl(t, "set_permissions", "-p", uri.Vhost, name, ".*", ".*", ".*")
	u, err := url.Parse(URL())
	if err != nil {
		t.Fatalf("rabbit: WASMROUTER_AMQP_URL does not parse: %v", err)
	}
	u.User = url.UserPassword(name, password)
	return u.String()
}
