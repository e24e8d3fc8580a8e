package server

import (
	"encoding/binary"
	"errors"
)

// Envelope kinds: what travels on the broker between servers.
const (
	kindMessage  = 'm' // a committed chat message
	kindPresence = 'p' // a user's first session started or last ended (native event)
	kindEvent    = 'e' // a native-only event for the channel's user(s) (friend added, group joined, read marker)
	kindJoin     = 'J' // user joined or created group: servers add their sessions of the user to the group
	kindLeave    = 'L' // on a group channel: user `from` left or was removed; servers drop its sessions from the group
	kindDrop     = 'D' // on a group channel: the group was deleted; servers drop every session from it
	kindRename   = 'N' // on a user channel: user `from` is now called conv (an event for native sessions too)
	// kindRevoke is in tokens.go.
)

// envelope is decoded from a broker payload. classic and native are the
// wire bytes for each protocol (with their trailing newline), encoded once by
// the publishing server and shared by every local recipient.
type envelope struct {
	kind    byte
	origin  string // session id that caused it (not delivered back to it)
	conv    string
	seq     int64
	from    int64 // sender (messages) or subject user (events)
	group   int64
	classic []byte
	native  []byte
}

func (e *envelope) marshal(b []byte) []byte {
	b = append(b, e.kind)
	b = appendBytes(b, []byte(e.origin))
	b = appendBytes(b, []byte(e.conv))
	b = binary.AppendVarint(b, e.seq)
	b = binary.AppendVarint(b, e.from)
	b = binary.AppendVarint(b, e.group)
	b = appendBytes(b, e.classic)
	return appendBytes(b, e.native)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

var errEnvelope = errors.New("server: malformed envelope")

// unmarshal decodes p, copying what it keeps (the broker reuses p).
func (e *envelope) unmarshal(p []byte) error {
	if len(p) < 1 {
		return errEnvelope
	}
	p = append([]byte(nil), p...) // one copy, shared by the fields below
	e.kind = p[0]
	d := decoder{p: p[1:]}
	e.origin = string(d.bytes())
	e.conv = string(d.bytes())
	e.seq = d.varint()
	e.from = d.varint()
	e.group = d.varint()
	e.classic = d.bytes()
	e.native = d.bytes()
	if d.err {
		return errEnvelope
	}
	return nil
}

type decoder struct {
	p   []byte
	err bool
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.p)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) bytes() []byte {
	l, n := binary.Uvarint(d.p)
	if n <= 0 || uint64(len(d.p)-n) < l {
		d.err = true
		return nil
	}
	v := d.p[n : n+int(l) : n+int(l)]
	d.p = d.p[n+int(l):]
	return v
}
