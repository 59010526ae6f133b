package event

import "time"

// The roles of a cluster's two connections: consuming and publishing do not share one.
const (
	RoleConsume = "consume"
	RolePublish = "publish"
)

// ClusterStatus is one broker cluster's state, as the admin API shows it; URL is redacted. The
// top-level fields sum up the cluster's connections (Connected: all of them are up);
// Connections has each one.
type ClusterStatus struct {
	Name           string             `json:"name"`
	Connected      bool               `json:"connected"`
	Blocked        string             `json:"blocked,omitempty"` // why the broker blocks publishing, while it does
	LastError      string             `json:"last_error"`
	ConnectedSince time.Time          `json:"connected_since,omitzero"` // zero while any connection is down
	Reconnects     uint64             `json:"reconnects"`               // connections established (every role), the first ones included
	URL            string             `json:"url"`
	Connections    []ConnectionStatus `json:"connections"`
}

// ConnectionStatus is one of a cluster's connections.
type ConnectionStatus struct {
	Role           string    `json:"role"` // RoleConsume or RolePublish
	Connected      bool      `json:"connected"`
	Blocked        string    `json:"blocked,omitempty"`
	LastError      string    `json:"last_error,omitempty"`
	ConnectedSince time.Time `json:"connected_since,omitzero"`
	Reconnects     uint64    `json:"reconnects"`
	// ChannelMax is the channel limit negotiated with the broker (0 while down); Channels the
	// channels the router holds open on the connection. On the publishing connection, delivery
	// streams share channels once their number would pass ChannelMax: Publishers is how many
	// streams publish, SharedChannels how many channels carry more than one.
	ChannelMax     int `json:"channel_max"`
	Channels       int `json:"channels"`
	Publishers     int `json:"publishers,omitempty"`
	SharedChannels int `json:"shared_channels,omitempty"`
}
