package desk

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/pas"
	"github.com/priora/priora/store"
)

// bcryptCost is the work factor of password hashes (2^10 rounds, about
// 50-100 ms on a server core): slow for guessing, quick enough to sign in.
const bcryptCost = bcrypt.DefaultCost

// Password length limits: bcrypt reads at most 72 bytes, so a longer
// password would be silently truncated; it is refused instead.
const (
	MinPasswordLength = 12
	MaxPasswordLength = 72
)

var usernamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,63}$`)

// Account is what an administrator gives to create a reviewer account.
type Account struct {
	Username string
	Password string
	// NPI (10 digits) and Name identify the reviewer on their decisions;
	// both are optional, the username is used when neither is given.
	NPI  string
	Name string
	// Role is nurse, physician or admin; none makes a nurse, the role
	// with the fewest powers over decisions.
	Role string
}

// ErrAccountExists is returned by AddReviewer for a taken username.
var ErrAccountExists = errors.New("a reviewer with this username exists")

// AddReviewer checks an account and stores it with its password hashed
// (bcrypt). Usernames are lower-cased. Errors name the offending field and
// never contain the password.
func AddReviewer(ctx context.Context, st *store.Store, a Account, now time.Time) error {
	a.Username = normalizeUsername(a.Username)
	if !usernamePattern.MatchString(a.Username) {
		return errors.New("username: use 2 to 64 lower-case letters, digits, dots, dashes or underscores, starting with a letter or digit")
	}
	if n := len(a.Password); n < MinPasswordLength || n > MaxPasswordLength {
		return fmt.Errorf("password: must be %d to %d bytes long", MinPasswordLength, MaxPasswordLength)
	}
	if a.NPI != "" && !fhir.IsNPI(a.NPI) {
		return errors.New("npi: must be 10 digits")
	}
	if a.Role == "" {
		a.Role = pas.RoleNurse
	}
	if !pas.ValidRole(a.Role) {
		return errors.New("role: must be nurse, physician or admin")
	}
	if len(a.Name) > 200 {
		return errors.New("name: at most 200 characters")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(a.Password), bcryptCost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	err = st.CreateReviewer(ctx, &store.Reviewer{Username: a.Username, PasswordHash: string(hash), NPI: a.NPI, Name: a.Name, Role: a.Role, Created: now.UTC()})
	if errors.Is(err, store.ErrDuplicate) {
		return ErrAccountExists
	}
	return err
}
