package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"clusterchat"
)

// runData runs the data commands of an embedded store: `chatserver backup`
// and `chatserver export` (README: "Your data").
func runData(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("chatserver "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	store := fs.String("store", defaultStore(), "store to read: sqlite:PATH, pebble:DIR or postgres://... (env CHAT_STORE)")
	var httpAddr *string
	if cmd == "backup" {
		httpAddr = fs.String("http", "", "ask the server running with this HTTP address for a backup (POST /debug/backup) instead of opening the store")
		fs.Usage = func() {
			fmt.Fprintln(stderr, "usage: chatserver backup [-store SPEC] DEST   (the store must not be in use)")
			fmt.Fprintln(stderr, "       chatserver backup -http ADDR           (a running server writes it under its -backup-dir)")
			fs.PrintDefaults()
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if cmd == "backup" && *httpAddr != "" {
		return remoteBackup(ctx, *httpAddr, stdout)
	}
	if cmd == "backup" && fs.NArg() != 1 {
		fs.Usage()
		return errors.New("backup: name one destination")
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := openStore(ctx, *store, logger)
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return fmt.Errorf("%w (is a server using it? then: chatserver backup -http ADDR)", err)
		}
		return err
	}
	defer st.Close()
	if cmd == "export" {
		return export(ctx, st, stdout)
	}
	b, ok := st.(clusterchat.BackupStore)
	if !ok {
		return fmt.Errorf("backup: %s has its own tools (pg_dump, pg_basebackup)", *store)
	}
	dest := fs.Arg(0)
	if err := b.Backup(ctx, dest); err != nil {
		return err
	}
	fmt.Fprintln(stdout, dest)
	return nil
}

// remoteBackup asks a running server for a backup and prints where it
// wrote it.
func remoteBackup(ctx context.Context, addr string, stdout io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/debug/backup", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("backup: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	_, err = stdout.Write(body)
	return err
}

// Export records: one JSON object a line, each with one of these keys.
type (
	exportUser struct {
		ID      int64   `json:"id"`
		Name    string  `json:"name"`
		Friends []int64 `json:"friends,omitempty"`
	}
	exportMember struct {
		ID   int64  `json:"id"`
		Role string `json:"role"`
	}
	exportGroup struct {
		ID      int64          `json:"id"`
		Name    string         `json:"name"`
		Desc    string         `json:"desc,omitempty"`
		Private bool           `json:"private,omitempty"`
		History string         `json:"history"`
		Members []exportMember `json:"members"`
	}
	exportMessage struct {
		ID    int64  `json:"id"`
		Conv  string `json:"conv"`
		Seq   int64  `json:"seq"`
		From  int64  `json:"from"`
		To    int64  `json:"to,omitempty"`
		Group int64  `json:"group,omitempty"`
		Time  string `json:"time"`
		Body  string `json:"body"`
	}
)

// export writes every user (with friends, no password hash), group (with
// members) and message, as JSON lines, through the Store interface only:
// any store exports the same way, and what it shows is what the server
// reads.
func export(ctx context.Context, st clusterchat.Store, w io.Writer) error {
	enc := json.NewEncoder(w)
	var uids []int64
	for after := ""; ; {
		page, err := st.SearchUsers(ctx, "", after, 500)
		if err != nil {
			return err
		}
		for _, u := range page {
			uids = append(uids, u.ID)
			after = u.Name
		}
		if len(page) < 500 {
			break
		}
	}
	groups := make(map[int64]bool)
	convs := make(map[string]bool)
	var convList []string
	for _, uid := range uids {
		u, err := st.User(ctx, uid)
		if err != nil {
			return err
		}
		friends, err := st.Friends(ctx, uid)
		if err != nil {
			return err
		}
		rec := exportUser{ID: u.ID, Name: u.Name}
		for _, f := range friends {
			rec.Friends = append(rec.Friends, f.ID)
		}
		if err := enc.Encode(map[string]any{"user": rec}); err != nil {
			return err
		}
		gs, err := st.UserGroups(ctx, uid)
		if err != nil {
			return err
		}
		for _, g := range gs {
			if groups[g.ID] {
				continue
			}
			groups[g.ID] = true
			rec := exportGroup{ID: g.ID, Name: g.Name, Desc: g.Desc, Private: g.Private, History: g.History}
			for _, m := range g.Members {
				rec.Members = append(rec.Members, exportMember{ID: m.UserID, Role: m.Role})
			}
			if err := enc.Encode(map[string]any{"group": rec}); err != nil {
				return err
			}
		}
		cs, err := st.Convs(ctx, uid)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if !convs[c.Conv] {
				convs[c.Conv] = true
				convList = append(convList, c.Conv)
			}
		}
	}
	for _, conv := range convList {
		for after := int64(0); ; {
			page, err := st.Since(ctx, conv, after, clusterchat.MaxPageSize)
			if err != nil {
				return err
			}
			for _, m := range page {
				rec := exportMessage{ID: m.ID, Conv: m.Conv, Seq: m.Seq, From: m.From, To: m.To, Group: m.GroupID,
					Time: m.Time.UTC().Format("2006-01-02T15:04:05.000Z"), Body: m.Body}
				if err := enc.Encode(map[string]any{"message": rec}); err != nil {
					return err
				}
				after = m.Seq
			}
			if len(page) < clusterchat.MaxPageSize {
				break
			}
		}
	}
	return nil
}

// defaultStore is the store with no -store flag nor CHAT_STORE: Pebble in
// clusterchat.pebble (the fast path; README "Stores"), except where the
// former default's SQLite file clusterchat.db exists and no Pebble store
// does, so that an upgrade keeps its data.
func defaultStore() string {
	if v, ok := os.LookupEnv("CHAT_STORE"); ok {
		return v
	}
	if _, err := os.Stat("clusterchat.db"); err == nil {
		if _, err := os.Stat("clusterchat.pebble"); errors.Is(err, os.ErrNotExist) {
			return "sqlite:clusterchat.db"
		}
	}
	return "pebble:clusterchat.pebble"
}
