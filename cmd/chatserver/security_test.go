package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"clusterchat/server"
)

// TestSecurityFlags: the rate-limit and token flags parse into the server
// configuration; rates take N/DURATION or off, and an empty rate leaves the
// server's default.
func TestSecurityFlags(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		err  string
		ok   func(*server.Config) bool
	}{
		{nil, nil, "", func(c *server.Config) bool {
			return !c.RateLimitsOff && c.MsgRate.N == 0 && c.LoginFailures == 10 && c.LoginWindow == time.Minute &&
				c.MsgBurst == 50 && c.ReqBurst == 200 && c.TokenTTL == 30*24*time.Hour && c.TokenSweep == time.Hour &&
				c.MsgQuota == 64<<20
		}},
		{[]string{"-msg-quota", "0"}, nil, "", func(c *server.Config) bool { return c.MsgQuota < 0 }},
		{nil, map[string]string{"CHAT_MSG_QUOTA": "1000"}, "", func(c *server.Config) bool { return c.MsgQuota == 1000 }},
		{[]string{"-msg-rate", "5/2s", "-register-rate", "off", "-login-failures", "0", "-token-ttl", "24h"}, nil, "", func(c *server.Config) bool {
			return c.MsgRate == server.Rate{N: 5, Per: 2 * time.Second} && c.RegisterRate == server.Off &&
				c.LoginFailures < 0 && c.TokenTTL == 24*time.Hour
		}},
		{[]string{"-rate-limits=false"}, nil, "", func(c *server.Config) bool { return c.RateLimitsOff }},
		{nil, map[string]string{"CHAT_RATE_LIMITS": "0", "CHAT_LOGIN_RATE": "3/1m"}, "", func(c *server.Config) bool {
			return c.RateLimitsOff && c.LoginRate == server.Rate{N: 3, Per: time.Minute}
		}},
		{[]string{"-msg-rate", "fast"}, nil, "N/DURATION", nil},
		{[]string{"-login-rate", "0/1m"}, nil, "positive", nil},
		{[]string{"-req-rate", "5/-1s"}, nil, "bad duration", nil},
	}
	for _, tt := range tests {
		for k, v := range tt.env {
			t.Setenv(k, v)
		}
		o, err := parse(tt.args, io.Discard)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: err %v, want %q", tt.args, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("%q: %v", tt.args, err)
		case tt.err == "":
			var cfg server.Config
			o.security.apply(&cfg)
			if !tt.ok(&cfg) {
				t.Errorf("%q %v: config %+v", tt.args, tt.env, cfg)
			}
		}
	}
}
