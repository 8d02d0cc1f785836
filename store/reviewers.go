package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Collections of the reviewer desk. Both are keyed by _id alone, the only
// filter the embedded engine (FerretDB v1 on SQLite) pushes down to an index:
// a reviewer by username, a session by the SHA-256 of its token. Every
// other filter is a full scan, so only rare operations (listing reviewers,
// sweeping expired sessions, ending a disabled reviewer's sessions) use one.
const (
	reviewers    = "reviewers"
	deskSessions = "deskSessions"
)

// Reviewer is a person who signs in to the reviewer desk to decide pended
// prior-authorization requests.
type Reviewer struct {
	// Username is the sign-in name, lower case; it is the document's _id.
	Username string `bson:"_id"`
	// PasswordHash is a bcrypt hash; the password itself is never stored.
	PasswordHash string `bson:"passwordHash"`
	// NPI and Name identify the reviewer on the decisions they make
	// (ClaimResponse reviewer extension); either may be empty.
	NPI  string `bson:"npi,omitempty"`
	Name string `bson:"name,omitempty"`
	// Role is nurse, physician or admin (pas.RoleNurse...). Accounts made
	// before roles existed have none and count as nurses, the role with
	// the fewest powers over decisions (pas.RoleOf).
	Role     string    `bson:"role,omitempty"`
	Disabled bool      `bson:"disabled"`
	Created  time.Time `bson:"created"`
	// LastLogin is the time of the last successful sign-in.
	LastLogin time.Time `bson:"lastLogin,omitzero"`
}

// Session is a signed-in desk session. The token the browser holds is never
// stored: ID is its SHA-256 (hex), so a copy of the database does not let
// anyone sign in.
type Session struct {
	ID       string `bson:"_id"`
	Username string `bson:"username"`
	// CSRF is the token every form of the session must send back.
	CSRF    string    `bson:"csrf"`
	Created time.Time `bson:"created"`
	// Expires slides forward while the session is used; it never passes
	// Deadline, the absolute end of the session.
	Expires  time.Time `bson:"expires"`
	Deadline time.Time `bson:"deadline"`
}

// CreateReviewer adds a reviewer account. ErrDuplicate means the username
// is taken.
func (s *Store) CreateReviewer(ctx context.Context, r *Reviewer) error {
	if _, err := s.db.Collection(reviewers).InsertOne(ctx, r); err != nil {
		if isDuplicate(err) {
			return ErrDuplicate
		}
		return fmt.Errorf("store: create reviewer: %w", err)
	}
	return nil
}

// Reviewer loads an account by username, or returns ErrNotFound.
func (s *Store) Reviewer(ctx context.Context, username string) (*Reviewer, error) {
	return byID[Reviewer](ctx, s.db.Collection(reviewers), username, "reviewer")
}

// Reviewers lists every account by username (a full scan; for the CLI).
func (s *Store) Reviewers(ctx context.Context) ([]Reviewer, error) {
	cur, err := s.db.Collection(reviewers).Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("store: list reviewers: %w", err)
	}
	var out []Reviewer
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: list reviewers: %w", err)
	}
	return out, nil
}

// SetReviewerDisabled disables or re-enables an account; ErrNotFound when
// there is none. Disabling also ends the reviewer's sessions.
func (s *Store) SetReviewerDisabled(ctx context.Context, username string, disabled bool) error {
	res, err := s.db.Collection(reviewers).UpdateOne(ctx, bson.D{{Key: "_id", Value: username}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "disabled", Value: disabled}}}})
	if err != nil {
		return fmt.Errorf("store: disable reviewer: %w", err)
	}
	if res.MatchedCount == 0 {
		return ErrNotFound
	}
	if disabled {
		if _, err := s.db.Collection(deskSessions).DeleteMany(ctx, bson.D{{Key: "username", Value: username}}); err != nil {
			return fmt.Errorf("store: end sessions of a disabled reviewer: %w", err)
		}
	}
	return nil
}

// SetReviewerRole changes an account's role; ErrNotFound when there is
// none. Sessions see the new role on their next request (the desk loads
// the account on each one).
func (s *Store) SetReviewerRole(ctx context.Context, username, role string) error {
	res, err := s.db.Collection(reviewers).UpdateOne(ctx, bson.D{{Key: "_id", Value: username}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "role", Value: role}}}})
	if err != nil {
		return fmt.Errorf("store: set reviewer role: %w", err)
	}
	if res.MatchedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// RecordReviewerLogin notes a successful sign-in.
func (s *Store) RecordReviewerLogin(ctx context.Context, username string, at time.Time) error {
	_, err := s.db.Collection(reviewers).UpdateOne(ctx, bson.D{{Key: "_id", Value: username}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "lastLogin", Value: at}}}})
	if err != nil {
		return fmt.Errorf("store: record reviewer login: %w", err)
	}
	return nil
}

// CreateSession stores a new session.
func (s *Store) CreateSession(ctx context.Context, sess *Session) error {
	if _, err := s.db.Collection(deskSessions).InsertOne(ctx, sess); err != nil {
		return fmt.Errorf("store: create session: %w", err)
	}
	return nil
}

// Session loads a session by the hash of its token. It returns ErrNotFound
// for an unknown session and for one that expired at now (the sweeper may
// not have removed it yet).
func (s *Store) Session(ctx context.Context, id string, now time.Time) (*Session, error) {
	sess, err := byID[Session](ctx, s.db.Collection(deskSessions), id, "session")
	if err != nil {
		return nil, err
	}
	if !now.Before(sess.Expires) {
		return nil, ErrNotFound
	}
	return sess, nil
}

// ExtendSession moves a session's expiry to expires.
func (s *Store) ExtendSession(ctx context.Context, id string, expires time.Time) error {
	_, err := s.db.Collection(deskSessions).UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: expires}}}})
	if err != nil {
		return fmt.Errorf("store: extend session: %w", err)
	}
	return nil
}

// DeleteSession ends a session; ending an unknown one is not an error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if _, err := s.db.Collection(deskSessions).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	return nil
}

// DeleteExpiredSessions removes the sessions expired at now and returns how
// many. The embedded engine has no TTL indexes, so a background sweeper
// calls this; it is a full scan of the (small) session collection.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.Collection(deskSessions).DeleteMany(ctx, bson.D{{Key: "expires", Value: bson.D{{Key: "$lte", Value: now}}}})
	if err != nil {
		return 0, fmt.Errorf("store: delete expired sessions: %w", err)
	}
	return res.DeletedCount, nil
}
