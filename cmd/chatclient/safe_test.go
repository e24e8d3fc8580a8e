package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/client"
)

func TestSafe(t *testing.T) {
	tests := []struct {
		in, one, body string
	}{
		{"hello", "hello", "hello"},
		{"Zoë 👩\u200d💻", "Zoë 👩\u200d💻", "Zoë 👩\u200d💻"},
		{"\x1b[2J\x1b[Hgone", `\x1b[2J\x1b[Hgone`, `\x1b[2J\x1b[Hgone`},
		{"ok\r[10:00] bob(3): forged", `ok\x0d[10:00] bob(3): forged`, `ok\x0d[10:00] bob(3): forged`},
		{"a\n[10:00] bob(3): forged", `a\x0a[10:00] bob(3): forged`, "a\n    | [10:00] bob(3): forged"},
		{"\u202eevil", `\u202eevil`, `\u202eevil`},
		{"nel\u0085 ls\u2028", `nel\u0085 ls\u2028`, `nel\u0085 ls\u2028`},
		{"bell\a del\x7f", `bell\x07 del\x7f`, `bell\x07 del\x7f`},
		{"bad\xffbyte", `bad\xffbyte`, `bad\xffbyte`},
	}
	for _, tc := range tests {
		if got := safe(tc.in); got != tc.one {
			t.Errorf("safe(%q) = %q, want %q", tc.in, got, tc.one)
		}
		if got := safeBody(tc.in); got != tc.body {
			t.Errorf("safeBody(%q) = %q, want %q", tc.in, got, tc.body)
		}
	}
}

// TestConsoleForgedLine: a multi-line message whose second line imitates
// another user's message prints as an indented continuation, never as a
// line of its own.
func TestConsoleForgedLine(t *testing.T) {
	addr := startServer(t)
	bob := startConsole(t, "bob", addr)
	bob.send("2", "bob", "pw-b")
	bid := bob.expect(`bob registered, your user id is (\d+)`)[1]
	bob.send("1", bid, "pw-b")
	bob.expect(`type help for commands`)

	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	mallory, err := client.Dial(ctx, addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mallory.Close()
	mid, err := mallory.Register(ctx, "mallory", "pw-m")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mallory.Login(ctx, mid, "pw-m"); err != nil {
		t.Fatal(err)
	}
	to, _ := strconv.ParseInt(bid, 10, 64)
	forged := "hi\n[2026-01-01 00:00:00] admin(1): send me your password"
	if _, err := mallory.Send(ctx, to, forged); err != nil {
		t.Fatal(err)
	}
	bob.expect(`mallory\(\d+\): hi\n    \| \[2026-01-01 00:00:00\] admin\(1\): send me your password\n`)
	if regexp.MustCompile(`(?m)^\[2026-01-01 00:00:00\] admin`).MatchString(bob.output()) {
		t.Fatalf("the forged line printed as a line of its own:\n%s", bob.output())
	}
}

// TestFailWaits: a rate-limit refusal with a long wait is printed in
// minutes or hours, a short one as the server wrote it.
func TestFailWaits(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{clusterchat.RateLimited(1500*time.Millisecond, "sending too fast"), "error: sending too fast; try again in 2s\n"},
		{clusterchat.RateLimited(5*time.Minute+time.Second, "doing that too often"), "error: doing that too often; try again in 6 min\n"},
		{clusterchat.RateLimited(14*time.Hour+time.Minute, "today's quota of message text is used up"), "error: today's quota of message text is used up; try again in 15 h\n"},
		{clusterchat.Errorf(clusterchat.ENOTFOUND, "no such user"), "error: no such user\n"},
	}
	for _, tc := range tests {
		var b strings.Builder
		(&app{out: &b}).fail(tc.err)
		if b.String() != tc.want {
			t.Errorf("fail(%v) printed %q, want %q", tc.err, b.String(), tc.want)
		}
	}
}
