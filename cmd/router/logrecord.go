package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"time"
	"unicode/utf8"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/router"
)

// logRecord is one event as `router log` prints it (one JSON object per line).
type logRecord struct {
	Seq        uint64         `json:"seq"`
	Time       string         `json:"time"`
	Source     string         `json:"source"`
	Exchange   string         `json:"exchange"`
	RoutingKey string         `json:"routing_key"`
	MessageID  string         `json:"message_id"`
	Headers    map[string]any `json:"headers,omitempty"`
	Body       string         `json:"body"`
	// BodyEncoding is "base64" when the body is not UTF-8 text and Body holds its base64.
	BodyEncoding string        `json:"body_encoding,omitempty"`
	Properties   logProperties `json:"properties"`
}

// logProperties are the AMQP properties other than message id and headers; unset ones are left out.
type logProperties struct {
	ContentType     string `json:"content_type,omitempty"`
	ContentEncoding string `json:"content_encoding,omitempty"`
	DeliveryMode    uint8  `json:"delivery_mode,omitempty"`
	Priority        uint8  `json:"priority,omitempty"`
	CorrelationID   string `json:"correlation_id,omitempty"`
	ReplyTo         string `json:"reply_to,omitempty"`
	Expiration      string `json:"expiration,omitempty"`
	Timestamp       string `json:"timestamp,omitempty"`
	Type            string `json:"type,omitempty"`
	UserID          string `json:"user_id,omitempty"`
	AppID           string `json:"app_id,omitempty"`
}

func newLogRecord(ev *event.Event) logRecord {
	p := ev.Props
	r := logRecord{
		Seq: ev.Seq, Time: ev.IngestTime.UTC().Format(time.RFC3339Nano), Source: ev.Source,
		Exchange: ev.Exchange, RoutingKey: ev.RoutingKey, MessageID: p.MessageID,
		Headers: router.HeadersJSON(ev.Headers), Body: string(ev.Body),
		Properties: logProperties{
			ContentType: p.ContentType, ContentEncoding: p.ContentEncoding, DeliveryMode: p.DeliveryMode,
			Priority: p.Priority, CorrelationID: p.CorrelationID, ReplyTo: p.ReplyTo, Expiration: p.Expiration,
			Type: p.Type, UserID: p.UserID, AppID: p.AppID,
		},
	}
	if !p.Timestamp.IsZero() {
		r.Properties.Timestamp = p.Timestamp.UTC().Format(time.RFC3339)
	}
	if !utf8.Valid(ev.Body) {
		r.Body, r.BodyEncoding = base64.StdEncoding.EncodeToString(ev.Body), "base64"
	}
	return r
}

// jsonLines writes one JSON value per line, without HTML escaping (bodies stay readable).
type jsonLines struct{ enc *json.Encoder }

func newJSONLines(w io.Writer) jsonLines {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return jsonLines{enc: enc}
}

func (j jsonLines) write(v any) error { return j.enc.Encode(v) }
