package sqlite

import "strings"

// Migrations and SocialMigration (the 1-based number of the migration that
// added the social tables) let the tests build a database of the previous
// schema.
var (
	Migrations      = migrations
	SocialMigration = func() int {
		for i, m := range migrations {
			if strings.Contains(m, "CREATE TABLE friend_requests") {
				return i + 1
			}
		}
		panic("no social migration")
	}()
)
