package main

import (
	"context"
	"log/slog"
	"strings"

	"clusterchat"
	"clusterchat/postgres"
	"clusterchat/redis"
)

func openPostgres(ctx context.Context, dsn string, logger *slog.Logger) (clusterchat.Store, error) {
	return postgres.Open(ctx, dsn, logger)
}

// openRedis connects the broker and the presence registry to one Redis.
func openRedis(ctx context.Context, url, node string, h clusterchat.BrokerHandler, logger *slog.Logger) (clusterchat.Broker, clusterchat.Presence, error) {
	b, err := redis.NewBroker(ctx, url, h, logger)
	if err != nil {
		return nil, nil, err
	}
	p, err := redis.NewPresence(ctx, url, node, logger)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return b, p, nil
}

// openLimiter returns the rate-limit counters for -broker spec: shared in
// Redis for a cluster (so login and registration limits hold across
// servers), nil (the server's in-process counters) otherwise.
func openLimiter(spec string) (clusterchat.Limiter, func(), error) {
	if !strings.HasPrefix(spec, "redis://") {
		return nil, func() {}, nil
	}
	l, err := redis.NewLimiter(spec, "", 0)
	if err != nil {
		return nil, nil, err
	}
	return l, func() { l.Close() }, nil
}
