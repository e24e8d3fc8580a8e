package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"
)

// classicRead is the size of the original classic client's receive buffer.
const classicRead = 1024

// ClassicClient behaves exactly like the original classic console client
// (../shared/protocol-seed.md) on the wire: it sends each object followed by
// one NUL byte, and reads each server message with ONE recv of at most 1024
// bytes into a zeroed buffer that it parses as one JSON object; its parser
// (nlohmann::json) stops at the first NUL byte. Recv fails wherever the
// original would abort or silently lose data: a read that does not hold one
// complete object (half of one, or two), a read with bytes after the
// object's NUL (the original never sees them), or a 1024-byte read with no
// NUL left to end the text.
type ClassicClient struct {
	Conn net.Conn
}

// DialClassic connects to addr; the connection is closed when the test
// ends.
func DialClassic(tb testing.TB, addr string) *ClassicClient {
	tb.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		tb.Fatalf("testenv: dial %s: %v", addr, err)
	}
	tb.Cleanup(func() { nc.Close() })
	return &ClassicClient{Conn: nc}
}

// Send writes obj and a NUL in one write, as the original does
// (send(fd, s.c_str(), strlen(s.c_str()) + 1, 0)).
func (c *ClassicClient) Send(obj string) error {
	c.Conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Conn.Write(append([]byte(obj), 0))
	return err
}

// Recv does one iteration of the original's read loop: one read of at most
// 1024 bytes (waiting at most timeout for it), parsed as one object. It
// returns the object's text, or an error saying why the original client
// would have failed on this read.
func (c *ClassicClient) Recv(timeout time.Duration) (string, error) {
	var buf [classicRead]byte // char buffer[1024] = {0};
	c.Conn.SetReadDeadline(time.Now().Add(timeout))
	n, err := c.Conn.Read(buf[:]) // one recv(fd, buffer, 1024, 0)
	if n == 0 {
		if err == nil {
			err = fmt.Errorf("empty read")
		}
		return "", err
	}
	end := bytes.IndexByte(buf[:], 0)
	if end < 0 {
		return "", fmt.Errorf("a read of %d bytes leaves no NUL to end the text: %.80q", n, buf[:n])
	}
	if end < n && bytes.ContainsFunc(buf[end:n], func(r rune) bool { return r != 0 }) {
		return "", fmt.Errorf("a read holds more than one object (the original parses only up to the first NUL and loses the rest): %q", buf[:n])
	}
	text := bytes.TrimSpace(buf[:end])
	if len(text) == 0 || text[0] != '{' || !json.Valid(text) {
		return "", fmt.Errorf("a read of %d bytes is not exactly one complete JSON object: %q", n, buf[:n])
	}
	return string(text), nil
}

// ClassicChat is a chat object as the original client uses it: it aborts
// unless id, name, time and msg are there with these types (and groupid for
// a group message).
type ClassicChat struct {
	MsgID   int    `json:"msgid"`
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Time    string `json:"time"`
	Msg     string `json:"msg"`
	GroupID int64  `json:"groupid"`
	To      int64  `json:"to"`
}

// ParseClassicChat decodes a chat object (msgid 6 or 10) and checks the
// fields the original client reads.
func ParseClassicChat(obj string) (ClassicChat, error) {
	var m ClassicChat
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(obj), &raw); err != nil {
		return m, err
	}
	if err := json.Unmarshal([]byte(obj), &m); err != nil {
		return m, fmt.Errorf("chat object %s: %v", obj, err)
	}
	need := []string{"id", "name", "time", "msg"}
	if m.MsgID == 10 {
		need = append(need, "groupid")
	} else if m.MsgID != 6 {
		return m, fmt.Errorf("not a chat object: %s", obj)
	}
	for _, k := range need {
		if _, ok := raw[k]; !ok {
			return m, fmt.Errorf("chat object without %q: %s", k, obj)
		}
	}
	return m, nil
}
