package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"clusterchat"
	"clusterchat/client"
)

const helpText = `commands:
  help                          this list
  chat:ID:MESSAGE               send MESSAGE to user ID
  addfriend:ID                  ask user ID to be your friend (friends when both added)
  creategroup:NAME:DESC         create a group
  addgroup:ID                   join group ID
  groupchat:ID:MESSAGE          send MESSAGE to group ID
  history:ID[:N]                last N (default 20) messages with user ID
  history:g:ID[:N]              last N messages of group ID
  loginout                      log out and go back to the menu
MESSAGE may contain ':'.
` + socialHelp

// run is the whole program: flags from args, the menu and commands from in,
// everything printed to out. It returns at "3" (quit), at the end of in, or
// when ctx ends.
func run(ctx context.Context, in io.Reader, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("chatclient", flag.ContinueOnError)
	fs.SetOutput(out)
	addr := fs.String("addr", "127.0.0.1:6000", "server address (host:port)")
	timeout := fs.Duration("timeout", 10*time.Second, "how long one command waits for the server")
	useTLS := fs.Bool("tls", false, "speak TLS, trusting the system's root certificates (or -ca)")
	caFile := fs.String("ca", "", "PEM file of the certificate authority to trust instead of the system's roots (implies -tls)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tc, err := tlsConfig(*useTLS, *caFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, err := client.Dial(ctx, *addr, client.Options{
		Reconnect: true,
		FromRead:  true,
		TLS:       tc,
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	a := &app{c: c, out: out, timeout: *timeout, users: map[int64]string{}, groups: map[int64]string{}}
	done := make(chan struct{})
	go func() { defer close(done); a.printEvents(ctx) }()
	defer func() { c.Close(); <-done }()

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), clusterchat.MaxFrame)
		for sc.Scan() {
			select {
			case lines <- strings.TrimRight(sc.Text(), "\r"):
			case <-ctx.Done():
				return
			}
		}
	}()
	read := func() (string, bool) {
		select {
		case l, ok := <-lines:
			return l, ok
		case <-ctx.Done():
			return "", false
		}
	}
	return a.menu(ctx, read)
}

// tlsConfig is the client's TLS setting from -tls and -ca: nil for plain
// TCP.
func tlsConfig(on bool, caFile string) (*tls.Config, error) {
	if caFile == "" {
		if on {
			return &tls.Config{}, nil // the system's roots
		}
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("-ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-ca %s: no PEM certificate in it", caFile)
	}
	return &tls.Config{RootCAs: roots}, nil
}

// app is one console session. Output goes through printf so that the event
// printer and the command loop never interleave within a line.
type app struct {
	c       *client.Client
	timeout time.Duration

	omu sync.Mutex // serialises writes to out
	out io.Writer

	mu     sync.Mutex // guards the fields below
	uid    int64
	users  map[int64]string // names we know, for printing
	groups map[int64]string
}

func (a *app) printf(format string, args ...any) {
	a.omu.Lock()
	fmt.Fprintf(a.out, format, args...)
	a.omu.Unlock()
}

func (a *app) fail(err error) {
	msg := clusterchat.ErrorMessage(err)
	if wait := clusterchat.RetryAfter(err); wait >= 2*time.Minute {
		// The server says "try again in 51840s"; a person reads hours.
		if i := strings.LastIndex(msg, "; try again in "); i >= 0 {
			msg = msg[:i] + "; try again in " + waitText(wait)
		}
	}
	a.printf("error: %s\n", safe(msg))
}

// waitText writes a long wait as a person says it: "5 min", "14 h".
func waitText(d time.Duration) string {
	if d < 2*time.Hour {
		return fmt.Sprintf("%d min", (d+time.Minute-1)/time.Minute)
	}
	return fmt.Sprintf("%d h", (d+time.Hour-1)/time.Hour)
}

func (a *app) menu(ctx context.Context, read func() (string, bool)) error {
	for {
		a.printf("========================\n1. login\n2. register\n3. quit\n========================\nchoice: ")
		choice, ok := read()
		if !ok {
			return nil
		}
		switch strings.TrimSpace(choice) {
		case "1":
			a.printf("userid: ")
			idText, ok1 := read()
			a.printf("userpassword: ")
			pw, ok2 := read()
			if !ok1 || !ok2 {
				return nil
			}
			id, err := strconv.ParseInt(strings.TrimSpace(idText), 10, 64)
			if err != nil || id <= 0 {
				a.printf("error: user id must be a positive number\n")
				continue
			}
			if !a.login(ctx, id, pw) {
				continue
			}
			if !a.chat(ctx, read) {
				return nil
			}
		case "2":
			a.printf("username: ")
			name, ok1 := read()
			a.printf("userpassword: ")
			pw, ok2 := read()
			if !ok1 || !ok2 {
				return nil
			}
			cctx, cancel := context.WithTimeout(ctx, a.timeout)
			id, err := a.c.Register(cctx, name, pw)
			cancel()
			if err != nil {
				a.fail(err)
				continue
			}
			a.printf("%s registered, your user id is %d, do not forget it!\n", name, id)
		case "3":
			return nil
		case "":
		default:
			a.printf("error: choose 1, 2 or 3\n")
		}
	}
}

// login logs in and prints who we are, friends, groups and unread counts
// while holding the output, so the missed messages the client starts
// fetching (Options.FromRead: those after the read marker) print after it.
func (a *app) login(ctx context.Context, id int64, pw string) bool {
	cctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	a.omu.Lock()
	info, err := a.c.Login(cctx, id, pw)
	if err != nil {
		a.omu.Unlock()
		a.fail(err)
		return false
	}
	a.mu.Lock()
	a.uid = info.ID
	a.users = map[int64]string{info.ID: safe(info.Name)}
	a.groups = map[int64]string{}
	for _, f := range info.Friends {
		a.users[f.ID] = safe(f.Name)
	}
	for _, g := range info.Groups {
		a.groups[g.ID] = safe(g.Name)
		for _, m := range g.Members {
			a.users[m.ID] = safe(m.Name)
		}
	}
	a.mu.Unlock()

	w := a.out
	fmt.Fprintf(w, "======================login user======================\n")
	fmt.Fprintf(w, "current login user => id:%d name:%s\n", info.ID, safe(info.Name))
	fmt.Fprintf(w, "----------------------friend list---------------------\n")
	for _, f := range info.Friends {
		fmt.Fprintf(w, "%d %s %s\n", f.ID, safe(f.Name), safe(string(f.State)))
	}
	fmt.Fprintf(w, "----------------------group list----------------------\n")
	for _, g := range info.Groups {
		fmt.Fprintf(w, "%d %s %s\n", g.ID, safe(g.Name), safe(g.Desc))
		for _, m := range g.Members {
			fmt.Fprintf(w, "    %d %s %s %s\n", m.ID, safe(m.Name), safe(string(m.State)), safe(m.Role))
		}
	}
	unread := 0
	for _, cv := range info.Convs {
		if cv.Unread > 0 {
			if unread == 0 {
				fmt.Fprintf(w, "----------------------unread--------------------------\n")
			}
			unread++
			fmt.Fprintf(w, "%s: %d unread\n", a.convLabel(cv.Conv), cv.Unread)
		}
	}
	fmt.Fprintf(w, "======================================================\n")
	fmt.Fprintf(w, "type help for commands\n")
	a.omu.Unlock()
	// Missed messages follow, printed as the client fetches them.
	return true
}

// chat runs commands until loginout (true) or the end of input (false).
func (a *app) chat(ctx context.Context, read func() (string, bool)) bool {
	for {
		line, ok := read()
		if !ok {
			return false
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		cmd, rest, _ := strings.Cut(line, ":")
		cctx, cancel := context.WithTimeout(ctx, a.timeout)
		quit := a.command(cctx, cmd, rest)
		cancel()
		if quit {
			return true
		}
	}
}

// command runs one command; true means loginout.
func (a *app) command(ctx context.Context, cmd, rest string) bool {
	switch cmd {
	case "help":
		a.printf("%s\n", helpText)
	case "chat", "groupchat":
		idText, msg, found := strings.Cut(rest, ":")
		id, err := strconv.ParseInt(strings.TrimSpace(idText), 10, 64)
		if !found || err != nil || id <= 0 {
			a.printf("error: usage %s:ID:MESSAGE\n", cmd)
			return false
		}
		if cmd == "chat" {
			_, err = a.c.Send(ctx, id, msg)
		} else {
			_, err = a.c.SendGroup(ctx, id, msg)
		}
		if err != nil {
			a.fail(err)
		}
	case "addfriend":
		id, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
		if err != nil || id <= 0 {
			a.printf("error: usage addfriend:ID\n")
			return false
		}
		f, err := a.c.AddFriend(ctx, id)
		if err != nil {
			a.fail(err)
			return false
		}
		a.learnUser(f.ID, f.Name)
		if f.State == "" {
			a.printf("* asked %s(%d) to be your friend\n", safe(f.Name), f.ID)
		} else {
			a.printf("* %s(%d) is now your friend (%s)\n", safe(f.Name), f.ID, safe(string(f.State)))
		}
	case "creategroup":
		name, desc, _ := strings.Cut(rest, ":")
		if name == "" {
			a.printf("error: usage creategroup:NAME:DESC\n")
			return false
		}
		gid, err := a.c.CreateGroup(ctx, name, desc)
		if err != nil {
			a.fail(err)
			return false
		}
		a.mu.Lock()
		a.groups[gid] = name
		a.mu.Unlock()
		a.printf("* created group %d %q\n", gid, name)
	case "addgroup":
		gid, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
		if err != nil || gid <= 0 {
			a.printf("error: usage addgroup:ID\n")
			return false
		}
		joined, err := a.c.JoinGroup(ctx, gid)
		if err != nil {
			a.fail(err)
			return false
		}
		if joined {
			a.printf("* joined group %d\n", gid)
		} else {
			a.printf("* already in group %d\n", gid)
		}
	case "history":
		a.history(ctx, rest)
	case "loginout":
		if err := a.c.Logout(ctx); err != nil {
			a.fail(err)
		}
		a.mu.Lock()
		a.uid = 0
		a.mu.Unlock()
		return true
	default:
		if !a.social(ctx, cmd, rest) {
			a.printf("error: unknown command %q, type help\n", cmd)
		}
	}
	return false
}

// history prints history:ID[:N] (1:1) or history:g:ID[:N] (group).
func (a *app) history(ctx context.Context, rest string) {
	parts := strings.Split(rest, ":")
	group := len(parts) > 0 && parts[0] == "g"
	if group {
		parts = parts[1:]
	}
	n := int64(20)
	var id int64
	var err error
	if len(parts) >= 1 {
		id, err = strconv.ParseInt(strings.TrimSpace(parts[0]), 10, 64)
	}
	if len(parts) == 2 && err == nil {
		n, err = strconv.ParseInt(strings.TrimSpace(parts[1]), 10, 64)
	}
	if len(parts) < 1 || len(parts) > 2 || err != nil || id <= 0 || n <= 0 || n > clusterchat.MaxPageSize {
		a.printf("error: usage history:ID[:N] or history:g:ID[:N], N up to %d\n", clusterchat.MaxPageSize)
		return
	}
	a.mu.Lock()
	uid := a.uid
	a.mu.Unlock()
	conv := clusterchat.DirectConv(uid, id)
	if group {
		conv = clusterchat.GroupConv(id)
	}
	p, err := a.c.History(ctx, conv, 0, int(n))
	if err != nil {
		a.fail(err)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "---------- history of %s ----------\n", a.convLabel(conv))
	for _, m := range p.Msgs {
		b.WriteString(a.formatMessage(m))
	}
	fmt.Fprintf(&b, "---------- end (%d messages) ----------\n", len(p.Msgs))
	a.printf("%s", b.String())
}

func (a *app) learnUser(id int64, name string) {
	if name == "" {
		return
	}
	a.mu.Lock()
	a.users[id] = safe(name)
	a.mu.Unlock()
}

// convLabel names a conversation for people: the peer or the group.
func (a *app) convLabel(conv string) string {
	x, y, g, ok := clusterchat.ParseConv(conv)
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case !ok:
		return conv
	case g != 0:
		if name, ok := a.groups[g]; ok {
			return fmt.Sprintf("group %d %q", g, name)
		}
		return fmt.Sprintf("group %d", g)
	}
	peer := x
	if peer == a.uid {
		peer = y
	}
	if name, ok := a.users[peer]; ok {
		return fmt.Sprintf("%s(%d)", name, peer)
	}
	return fmt.Sprintf("user %d", peer)
}

// formatMessage renders one message line:
// "[TIME] NAME(ID): TEXT", group messages prefixed with [group ID "NAME"].
func (a *app) formatMessage(m *clusterchat.Message) string {
	when := m.CTime
	if !m.Time.IsZero() {
		when = m.Time.Local().Format(clusterchat.TimeFormat)
	}
	prefix := ""
	if m.GroupID != 0 {
		a.mu.Lock()
		name, ok := a.groups[m.GroupID]
		a.mu.Unlock()
		if ok {
			prefix = fmt.Sprintf("[group %d %q] ", m.GroupID, name)
		} else {
			prefix = fmt.Sprintf("[group %d] ", m.GroupID)
		}
	}
	a.mu.Lock()
	own := m.From == a.uid
	a.mu.Unlock()
	if own && m.GroupID == 0 {
		return fmt.Sprintf("[%s] %s(%d) -> %s: %s\n", safe(when), safe(m.FromName), m.From, a.convLabel(m.Conv), safeBody(m.Body))
	}
	return fmt.Sprintf("%s[%s] %s(%d): %s\n", prefix, safe(when), safe(m.FromName), m.From, safeBody(m.Body))
}

// printEvents prints what the server sends until the client closes.
func (a *app) printEvents(ctx context.Context) {
	for e := range a.c.Events() {
		switch e.Kind {
		case client.EventMessage:
			m := e.Message
			a.learnUser(m.From, m.FromName)
			if !e.Sent { // typed here: no echo, like the classic client
				a.printf("%s", a.formatMessage(m))
			}
			// Printed (or written here) means read: the unread count at the
			// next login and the "missed" messages of the next session
			// start after it.
			rctx, cancel := context.WithTimeout(ctx, a.timeout)
			if err := a.c.MarkRead(rctx, m.Conv, m.Seq); err != nil && !errors.Is(err, context.Canceled) && a.c.UserID() != 0 {
				a.fail(err)
			}
			cancel()
		case client.EventPresence:
			a.printf("* %s is %s\n", a.userLabel(e.UserID), safe(string(e.State)))
		case client.EventFriendAdded:
			a.learnUser(e.UserID, e.Name)
			a.printf("* %s(%d) is now your friend (%s)\n", safe(e.Name), e.UserID, safe(string(e.State)))
		case client.EventGroupJoined:
			a.learnUser(e.UserID, e.Name)
			a.printf("* %s(%d) joined group %d\n", safe(e.Name), e.UserID, e.GroupID)
		case client.EventDisconnected:
			a.printf("* connection lost, reconnecting...\n")
		case client.EventReconnected:
			a.printf("* reconnected\n")
		case client.EventError:
			a.fail(e.Err)
		case client.EventFriend, client.EventGroup, client.EventRenamed:
			a.printSocial(e)
		}
	}
}

func (a *app) userLabel(id int64) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if name, ok := a.users[id]; ok {
		return fmt.Sprintf("%s(%d)", name, id)
	}
	return fmt.Sprintf("user %d", id)
}
