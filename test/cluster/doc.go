// Package cluster holds the multi-instance tests: several real mcpgate processes on one PostgreSQL and Redis.
package cluster
