package main

import (
	"context"
	"errors"
	"log/slog"

	"clusterchat"
)

func openPostgres(ctx context.Context, dsn string, logger *slog.Logger) (clusterchat.Store, error) {
	return nil, errors.New("postgres store not built yet")
}

func openRedis(ctx context.Context, url, node string, h clusterchat.BrokerHandler, logger *slog.Logger) (clusterchat.Broker, clusterchat.Presence, error) {
	return nil, nil, errors.New("redis broker not built yet")
}
