package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// postgresChannel is the PostgreSQL notification channel every instance
// notifies and listens on. Notifications stay within one database, so every
// mcpgate on the same database, and only those, share it.
const postgresChannel = "mcpgate_bus"

// ListenerApplicationName starts the application_name of a PostgreSQL bus's
// listening connection, followed by the instance id: it is how an operator
// (or a test) finds it in pg_stat_activity.
const ListenerApplicationName = "mcpgate bus "

// NewPostgres returns a bus over PostgreSQL's LISTEN/NOTIFY on one channel,
// with JSON payloads. It listens on a dedicated connection and notifies
// through a small pool of its own. dsn is the DATABASE_URL setting, in the
// postgres:// form. It fails when it cannot connect and listen within ctx
// (and 10 s), so that start-up says what is wrong. logger receives the bus's
// own messages (connection lost, connection back); nil discards them.
func NewPostgres(ctx context.Context, dsn string, logger *slog.Logger) (Bus, error) {
	b, err := newPostgres(ctx, dsn, logger, idleCheck)
	if err != nil {
		return nil, err // not a nil *remote in a non-nil Bus
	}
	return b, nil
}

// newPostgres is NewPostgres checking a connection silent for idle.
func newPostgres(ctx context.Context, dsn string, logger *slog.Logger, idle time.Duration) (*remote, error) {
	listenConfig, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err) // pgx hides the password
	}
	poolConfig, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	// Publishing is one short statement now and then.
	poolConfig.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, poolConfig)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: open PostgreSQL database: %w", err)
	}
	id := newInstanceID()
	listenConfig.RuntimeParams["application_name"] = ListenerApplicationName + id
	t := &postgresTransport{listenConfig: listenConfig, pool: pool, idle: idle}
	b, err := startRemote(ctx, id, "PostgreSQL", t, logger)
	if err != nil {
		_ = t.close()
		return nil, fmt.Errorf("DATABASE_URL: listen on PostgreSQL at %s:%d: %w", listenConfig.Host, listenConfig.Port, err)
	}
	return b, nil
}

type postgresTransport struct {
	listenConfig *pgx.ConnConfig
	pool         *pgxpool.Pool
	idle         time.Duration // see idleCheck
}

func (t *postgresTransport) publish(ctx context.Context, payload []byte) error {
	_, err := t.pool.Exec(ctx, "SELECT pg_notify($1, $2)", postgresChannel, string(payload))
	return err
}

func (t *postgresTransport) close() error {
	t.pool.Close()
	return nil
}

func (t *postgresTransport) listen(ctx context.Context) (listener, error) {
	conn, err := pgx.ConnectConfig(ctx, t.listenConfig)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+postgresChannel); err != nil {
		closeConn(conn)
		return nil, err
	}
	return &postgresListener{conn: conn, idle: t.idle}, nil
}

// postgresListener is a connection that has run LISTEN. pgx does not
// reconnect it: when it fails, the bus makes another.
type postgresListener struct {
	conn *pgx.Conn
	idle time.Duration
}

func (l *postgresListener) close() { closeConn(l.conn) }

func (l *postgresListener) receive(ctx context.Context, deliver func(payload string)) error {
	for {
		wait, cancel := context.WithTimeout(ctx, l.idle)
		n, err := l.conn.WaitForNotification(wait)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			// Silence for idleCheck: a timed-out wait leaves the connection
			// usable, so check it.
			ping, cancel := context.WithTimeout(ctx, l.idle)
			err = l.conn.Ping(ping)
			cancel()
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("no answer to a ping in %s: %w", l.idle, err)
			}
			continue
		}
		if err != nil {
			return err
		}
		deliver(n.Payload)
	}
}

// closeConn closes conn, waiting a moment at most for the server.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}
