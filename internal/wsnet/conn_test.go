package wsnet_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"clusterchat/internal/wsnet"
)

// TestFrames: the frames wsnet writes itself (every length form, masked
// from a client, plain from a server) are read back by the library on the
// other side as one text message per object, in order, whether written one
// Write at a time, several per Write, split over Writes, or as a batch.
func TestFrames(t *testing.T) {
	sizes := []int{1, 125, 126, 127, 65535, 65536, 100000}
	var objs [][]byte
	for i, n := range sizes {
		objs = append(objs, []byte(strings.Repeat(string(rune('a'+i)), n)))
	}
	serverSide := make(chan *wsnet.Conn, 1)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		serverSide <- wsnet.New(ws)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := wsnet.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := <-serverSide
	defer server.Close()

	writes := map[string]func(c *wsnet.Conn) error{
		"one per Write": func(c *wsnet.Conn) error {
			for _, o := range objs {
				if _, err := c.Write(append(append([]byte(nil), o...), '\n')); err != nil {
					return err
				}
			}
			return nil
		},
		"all in one Write, NUL and newline terminated": func(c *wsnet.Conn) error {
			var b []byte
			for i, o := range objs {
				b = append(append(b, o...), "\n\x00"[i%2])
			}
			_, err := c.Write(b)
			return err
		},
		"split mid-object": func(c *wsnet.Conn) error {
			var b []byte
			for _, o := range objs {
				b = append(append(b, o...), '\n')
			}
			for len(b) > 0 {
				n := min(len(b), 7777)
				if _, err := c.Write(b[:n]); err != nil {
					return err
				}
				b = b[n:]
			}
			return nil
		},
		"WriteBuffers": func(c *wsnet.Conn) error {
			var bufs [][]byte
			for _, o := range objs {
				bufs = append(bufs, append(append([]byte(nil), o...), '\n'))
			}
			return c.WriteBuffers(bufs)
		},
	}
	for name, write := range writes {
		for _, dir := range []struct {
			name     string
			from, to *wsnet.Conn
		}{{"client to server", client, server}, {"server to client", server, client}} {
			t.Run(name+"/"+dir.name, func(t *testing.T) {
				errc := make(chan error, 1)
				go func() { errc <- write(dir.from) }()
				for i, want := range objs {
					typ, got, err := dir.to.WS().ReadMessage()
					if err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
					if typ != websocket.TextMessage || !bytes.Equal(got, want) {
						t.Fatalf("message %d: type %d, %d bytes, want text of %d", i, typ, len(got), len(want))
					}
				}
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}
