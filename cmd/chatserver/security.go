package main

import (
	"flag"
	"os"
	"strconv"
	"time"

	"clusterchat/server"
)

// securityFlags are the abuse limits and token settings (SECURITY.md), each
// with an environment variable; an empty rate takes the server's default.
type securityFlags struct {
	rateLimits                                     bool
	register, login, accountFail, msgRate, reqRate rateFlag
	loginFailures                                  int
	loginWindow, tokenTTL, tokenSweep              time.Duration
	msgBurst, reqBurst, msgQuota                   int
}

// rateFlag is a server.Rate as a flag: N/DURATION or off.
type rateFlag struct{ r server.Rate }

func (f *rateFlag) String() string {
	if f.r.N == 0 {
		return ""
	}
	return f.r.String()
}

func (f *rateFlag) Set(s string) error {
	r, err := server.ParseRate(s)
	if err == nil {
		f.r = r
	}
	return err
}

func addSecurityFlags(fs *flag.FlagSet) *securityFlags {
	sf := &securityFlags{}
	envDur := func(name string, def time.Duration) time.Duration {
		if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
			return d
		}
		return def
	}
	envInt := func(name string, def int) int {
		if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
			return n
		}
		return def
	}
	rate := func(f *rateFlag, name, env, def, usage string) {
		if v := os.Getenv(env); v != "" {
			if r, err := server.ParseRate(v); err == nil {
				f.r = r
			}
		}
		fs.Var(f, name, usage+" (N/DURATION or off; default "+def+"; env "+env+")")
	}
	fs.BoolVar(&sf.rateLimits, "rate-limits", os.Getenv("CHAT_RATE_LIMITS") != "0",
		"apply the rate limits; false turns every one off, for benchmarks and closed networks (env CHAT_RATE_LIMITS=0)")
	rate(&sf.register, "register-rate", "CHAT_REGISTER_RATE", "10/1h", "registrations per client address")
	rate(&sf.login, "login-rate", "CHAT_LOGIN_RATE", "60/1m", "password logins per client address")
	rate(&sf.accountFail, "account-fail-rate", "CHAT_ACCOUNT_FAIL_RATE", "100/1h",
		"failed password logins of one account, from addresses that never logged in to it, before those are refused")
	rate(&sf.msgRate, "msg-rate", "CHAT_MSG_RATE", "10/1s", "sustained chat messages per user, per server")
	rate(&sf.reqRate, "req-rate", "CHAT_REQ_RATE", "50/1s", "sustained requests per connection")
	fs.IntVar(&sf.loginFailures, "login-failures", envInt("CHAT_LOGIN_FAILURES", 10),
		"failed password logins of one account from one address that lock that pair for -login-window (env CHAT_LOGIN_FAILURES)")
	fs.DurationVar(&sf.loginWindow, "login-window", envDur("CHAT_LOGIN_WINDOW", time.Minute), "see -login-failures (env CHAT_LOGIN_WINDOW)")
	fs.IntVar(&sf.msgBurst, "msg-burst", envInt("CHAT_MSG_BURST", 50), "messages a user may send at once above -msg-rate (env CHAT_MSG_BURST)")
	fs.IntVar(&sf.msgQuota, "msg-quota", envInt("CHAT_MSG_QUOTA", 64<<20),
		"bytes of message text a user may send in 24 hours, per server (0: no quota; env CHAT_MSG_QUOTA)")
	fs.IntVar(&sf.reqBurst, "req-burst", envInt("CHAT_REQ_BURST", 200), "requests a connection may send at once above -req-rate (env CHAT_REQ_BURST)")
	fs.DurationVar(&sf.tokenTTL, "token-ttl", envDur("CHAT_TOKEN_TTL", 30*24*time.Hour),
		"session tokens expire after this long unused; each use renews them (env CHAT_TOKEN_TTL)")
	fs.DurationVar(&sf.tokenSweep, "token-sweep", envDur("CHAT_TOKEN_SWEEP", time.Hour), "how often expired tokens are deleted (env CHAT_TOKEN_SWEEP)")
	return sf
}

// apply puts the flags into cfg.
func (sf *securityFlags) apply(cfg *server.Config) {
	cfg.RateLimitsOff = !sf.rateLimits
	cfg.RegisterRate, cfg.LoginRate, cfg.AccountFailRate = sf.register.r, sf.login.r, sf.accountFail.r
	cfg.MsgRate, cfg.ReqRate = sf.msgRate.r, sf.reqRate.r
	cfg.MsgBurst, cfg.ReqBurst = sf.msgBurst, sf.reqBurst
	cfg.MsgQuota = sf.msgQuota
	if sf.msgQuota == 0 {
		cfg.MsgQuota = -1 // 0 on the command line means off
	}
	cfg.LoginFailures, cfg.LoginWindow = sf.loginFailures, sf.loginWindow
	if sf.loginFailures == 0 {
		cfg.LoginFailures = -1 // 0 on the command line means off
	}
	cfg.TokenTTL, cfg.TokenSweep = sf.tokenTTL, sf.tokenSweep
}
