package kv

// ACL users, as Redis 7.0 has them (acl.c): users with passwords and
// flags, each with a root selector and more selectors in parentheses; a
// selector allows commands (by name, subcommand, first argument or
// category), keys (patterns, read and write apart) and Pub/Sub channels.
//
// The rules name and count Redis's whole command table
// (redisACLCommands, generated from Redis's COMMAND): a rule may name a
// command coppice does not have, as Redis accepts it, and ACL LIST
// describes a user's commands as Redis 7.0 does, choosing categories by
// how many of their commands the user may run. Single commands come in
// name order (Redis's come in its hash table's order).
//
// A set of users (ACLUsers) is immutable: a change makes a new set, which
// the node swaps in whole.

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Why a command is refused, in Redis's order of relevance (the reason
// given when no selector allows a command is the highest of theirs).
const (
	ACLOK = iota
	ACLDeniedCmd
	ACLDeniedKey
	ACLDeniedAuth
	ACLDeniedChannel
)

// aclTableEntry is a command of Redis's table (commands_redis.go).
type aclTableEntry struct {
	name   string
	cats   string
	arity  int
	noAuth bool
}

// aclCategoryNames are Redis's categories, in its order (ACL CAT's, and
// the order ACL LIST tries them in).
var aclCategoryNames = []string{"keyspace", "read", "write", "set", "sortedset", "list", "hash", "string",
	"bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow", "blocking", "dangerous",
	"connection", "transaction", "scripting"}

// ACLCategories returns Redis's command categories, in its order.
func ACLCategories() []string { return slices.Clone(aclCategoryNames) }

func aclCategory(name string) (uint32, bool) {
	for i, c := range aclCategoryNames {
		if strings.EqualFold(c, name) {
			return 1 << i, true
		}
	}
	return 0, false
}

// aclCmd is a command or subcommand as the ACL rules know it.
type aclCmd struct {
	id     int
	name   string // full name: "get", "config|get"
	cats   uint32
	arity  int
	noAuth bool
	parent *aclCmd
	subs   []*aclCmd // by name
}

type aclTable struct {
	top    []*aclCmd // by name
	byName map[string]*aclCmd
	n      int
}

var (
	aclTableOnce sync.Once
	aclCmds      *aclTable
)

// aclTableOf builds the ACL command table: Redis's commands, and coppice's
// own that Redis lacks.
func aclCommandTable() *aclTable {
	aclTableOnce.Do(func() {
		loadMeta()
		t := &aclTable{byName: map[string]*aclCmd{}}
		add := func(name string, cats []string, arity int, noAuth bool) {
			if _, ok := t.byName[name]; ok {
				return
			}
			c := &aclCmd{id: t.n, name: name, arity: arity, noAuth: noAuth}
			t.n++
			for _, cat := range cats {
				if bit, ok := aclCategory(cat); ok {
					c.cats |= bit
				}
			}
			t.byName[name] = c
		}
		for _, e := range redisACLCommands() {
			add(e.name, strings.Fields(e.cats), e.arity, e.noAuth)
		}
		names := make([]string, 0, len(byFullName))
		for name := range byFullName {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			s := byFullName[name]
			add(name, aclCategories(name), s.Arity, s.Has("no_auth"))
		}
		for _, c := range t.byName {
			if i := strings.IndexByte(c.name, '|'); i >= 0 {
				if p := t.byName[c.name[:i]]; p != nil {
					c.parent = p
					p.subs = append(p.subs, c)
					continue
				}
			}
			t.top = append(t.top, c)
		}
		byName := func(a, b *aclCmd) int { return strings.Compare(a.name, b.name) }
		slices.SortFunc(t.top, byName)
		for _, c := range t.top {
			slices.SortFunc(c.subs, byName)
		}
		aclCmds = t
	})
	return aclCmds
}

// lookup finds a command by its full name, in any case ("CONFIG|get").
func (t *aclTable) lookup(name string) *aclCmd {
	return t.byName[strings.ToLower(name)]
}

// command finds the command args run: a container's subcommand, or nil
// for an unknown command or subcommand.
func (t *aclTable) command(args [][]byte) *aclCmd {
	if len(args) == 0 {
		return nil
	}
	c := t.lookup(string(args[0]))
	if c == nil || len(c.subs) == 0 {
		return c
	}
	if len(args) < 2 {
		return c
	}
	return t.lookup(c.name + "|" + string(args[1]))
}

// Key pattern permissions.
const (
	aclRead  = 1
	aclWrite = 2
	aclAll   = aclRead | aclWrite
)

type aclKeyPattern struct {
	pattern string
	flags   int
}

func (p aclKeyPattern) String() string {
	switch p.flags {
	case aclRead:
		return "%R~" + p.pattern
	case aclWrite:
		return "%W~" + p.pattern
	}
	return "~" + p.pattern
}

// aclSelector is a set of permissions. A user may run a command if any of
// its selectors allows it.
type aclSelector struct {
	allKeys     bool
	allChannels bool
	allCommands bool // no command check at all
	future      bool // +@all's mark: commands added later are allowed
	bits        []uint64
	firstArgs   map[int][]string // a denied command's allowed first arguments
	keys        []aclKeyPattern
	channels    []string
}

func newSelector() *aclSelector {
	return &aclSelector{bits: make([]uint64, (aclCommandTable().n+63)/64)}
}

func (s *aclSelector) clone() *aclSelector {
	c := *s
	c.bits = slices.Clone(s.bits)
	c.keys = slices.Clone(s.keys)
	c.channels = slices.Clone(s.channels)
	if s.firstArgs != nil {
		c.firstArgs = map[int][]string{}
		for id, a := range s.firstArgs {
			c.firstArgs[id] = slices.Clone(a)
		}
	}
	return &c
}

func (s *aclSelector) bit(id int) bool { return s.bits[id/64]&(1<<(id%64)) != 0 }

func (s *aclSelector) setBit(id int, on bool) {
	if on {
		s.bits[id/64] |= 1 << (id % 64)
	} else {
		s.bits[id/64] &^= 1 << (id % 64)
		s.allCommands = false
	}
}

// changePerm allows or denies c, and a container's subcommands with it.
func (s *aclSelector) changePerm(c *aclCmd, allow bool) {
	s.setBit(c.id, allow)
	delete(s.firstArgs, c.id)
	for _, sub := range c.subs {
		s.setBit(sub.id, allow)
	}
}

// inCategory calls fn with every command of category cat, each command
// of the table followed by its subcommands.
func (t *aclTable) inCategory(cat uint32, fn func(c *aclCmd)) {
	for _, c := range t.top {
		if c.cats&cat != 0 {
			fn(c)
		}
		for _, sub := range c.subs {
			if sub.cats&cat != 0 {
				fn(sub)
			}
		}
	}
}

func (s *aclSelector) setCategory(cat uint32, allow bool) {
	aclCommandTable().inCategory(cat, func(c *aclCmd) { s.changePerm(c, allow) })
}

func (s *aclSelector) setAll(allow bool) {
	fill := uint64(0)
	if allow {
		fill = ^uint64(0)
	}
	for i := range s.bits {
		s.bits[i] = fill
	}
	s.allCommands, s.future, s.firstArgs = allow, allow, nil
}

// aclRuleReason is why a rule is refused, in Redis's words (sentences
// that end its error, so capitalised).
type aclRuleReason string

func (r aclRuleReason) Error() string { return string(r) }

const (
	errACLSyntax       aclRuleReason = "Syntax error"
	errACLUnknown      aclRuleReason = "Unknown command or category name in ACL"
	errACLKeyAfterAll  aclRuleReason = "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns"
	errACLChanAfterAll aclRuleReason = "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels"
	errACLNoSuchPass   aclRuleReason = "The password you are trying to remove from the user does not exist"
	errACLBadHash      aclRuleReason = "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"
	errACLSubFirstArg  aclRuleReason = "Allowing first-arg of a subcommand is not supported"
)

func hasSpaces(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\v', '\f', '\r', 0:
			return true
		}
	}
	return false
}

// set applies one rule to the selector (ACLSetSelector).
func (s *aclSelector) set(op string) error {
	t := aclCommandTable()
	switch {
	case strings.EqualFold(op, "allkeys") || op == "~*":
		s.allKeys, s.keys = true, nil
	case strings.EqualFold(op, "resetkeys"):
		s.allKeys, s.keys = false, nil
	case strings.EqualFold(op, "allchannels") || op == "&*":
		s.allChannels, s.channels = true, nil
	case strings.EqualFold(op, "resetchannels"):
		s.allChannels, s.channels = false, nil
	case strings.EqualFold(op, "allcommands") || strings.EqualFold(op, "+@all"):
		s.setAll(true)
	case strings.EqualFold(op, "nocommands") || strings.EqualFold(op, "-@all"):
		s.setAll(false)
	case op[0] == '~' || op[0] == '%':
		if s.allKeys {
			return errACLKeyAfterAll
		}
		flags, off := aclAll, 1
		if op[0] == '%' {
			flags = 0
			for ; off < len(op); off++ {
				switch ch := op[off]; {
				case (ch == 'R' || ch == 'r') && flags&aclRead == 0:
					flags |= aclRead
				case (ch == 'W' || ch == 'w') && flags&aclWrite == 0:
					flags |= aclWrite
				case ch == '~':
					off++
					goto done
				default:
					return errACLSyntax
				}
			}
		done:
			if flags == 0 {
				return errACLSyntax
			}
		}
		pat := op[off:]
		if hasSpaces(pat) {
			return errACLSyntax
		}
		i := slices.IndexFunc(s.keys, func(p aclKeyPattern) bool { return p.pattern == pat })
		if i < 0 {
			s.keys = append(s.keys, aclKeyPattern{pat, flags})
		} else {
			s.keys[i].flags |= flags
		}
		s.allKeys = false
	case op[0] == '&':
		if s.allChannels {
			return errACLChanAfterAll
		}
		pat := op[1:]
		if hasSpaces(pat) {
			return errACLSyntax
		}
		if !slices.Contains(s.channels, pat) {
			s.channels = append(s.channels, pat)
		}
		s.allChannels = false
	case op[0] == '+' && (len(op) < 2 || op[1] != '@'):
		bar := strings.LastIndexByte(op, '|')
		if bar < 0 {
			c := t.lookup(op[1:])
			if c == nil {
				return errACLUnknown
			}
			s.changePerm(c, true)
			return nil
		}
		c := t.lookup(op[1:bar])
		switch {
		case c == nil:
			return errACLUnknown
		case c.parent != nil:
			return errACLSubFirstArg
		case bar == len(op)-1:
			return errACLSyntax
		}
		if len(c.subs) > 0 {
			sub := t.lookup(op[1:])
			if sub == nil {
				return errACLUnknown
			}
			s.changePerm(sub, true)
			return nil
		}
		arg := op[bar+1:]
		if s.firstArgs == nil {
			s.firstArgs = map[int][]string{}
		}
		if !slices.ContainsFunc(s.firstArgs[c.id], func(a string) bool { return strings.EqualFold(a, arg) }) {
			s.firstArgs[c.id] = append(s.firstArgs[c.id], arg)
		}
	case op[0] == '-' && (len(op) < 2 || op[1] != '@'):
		c := t.lookup(op[1:])
		if c == nil {
			return errACLUnknown
		}
		s.changePerm(c, false)
	case (op[0] == '+' || op[0] == '-') && op[1] == '@':
		cat, ok := aclCategory(op[2:])
		if !ok {
			return errACLUnknown
		}
		s.setCategory(cat, op[0] == '+')
	default:
		return errACLSyntax
	}
	return nil
}

// commandRules describes the selector's commands as Redis 7.0 does
// (ACLDescribeSelectorCommandRules): +@all or -@all, then the categories
// that fit best, then single commands.
func (s *aclSelector) commandRules() string {
	t := aclCommandTable()
	var rules []string
	additive := !s.future
	fake := newSelector()
	if additive {
		rules = append(rules, "-@all")
		fake.setAll(false)
	} else {
		rules = append(rules, "+@all")
		fake.setAll(true)
	}
	temp := newSelector()
	copy(temp.bits, s.bits)
	applied := make([]bool, len(aclCategoryNames))
	for {
		best, minDiff, maxSame := -1, int(^uint(0)>>1), 0
		for j := range aclCategoryNames {
			if applied[j] {
				continue
			}
			on, off := temp.countCategory(1 << j)
			diff, same := on, off
			if additive {
				diff, same = off, on
			}
			if same > diff && (diff < minDiff || (diff == minDiff && same > maxSame)) {
				best, minDiff, maxSame = j, diff, same
			}
		}
		if best < 0 {
			break
		}
		fake.setCategory(1<<best, additive)
		temp.setCategory(1<<best, !additive)
		sign := "+@"
		if !additive {
			sign = "-@"
		}
		rules = append(rules, sign+aclCategoryNames[best])
		applied[best] = true
	}
	var single func(cmds []*aclCmd)
	single = func(cmds []*aclCmd) {
		for _, c := range cmds {
			user, got := s.bit(c.id), fake.bit(c.id)
			if user != got {
				if user {
					rules = append(rules, "+"+c.name)
				} else {
					rules = append(rules, "-"+c.name)
				}
				fake.changePerm(c, user)
			}
			single(c.subs)
			if !user {
				for _, a := range s.firstArgs[c.id] {
					rules = append(rules, "+"+c.name+"|"+a)
				}
			}
		}
	}
	single(t.top)
	return strings.Join(rules, " ")
}

// countCategory counts the commands of a category the selector allows
// and denies.
func (s *aclSelector) countCategory(cat uint32) (on, off int) {
	aclCommandTable().inCategory(cat, func(c *aclCmd) {
		if s.bit(c.id) {
			on++
		} else {
			off++
		}
	})
	return on, off
}

func (s *aclSelector) keysString() string {
	if s.allKeys {
		return "~*"
	}
	parts := make([]string, len(s.keys))
	for i, p := range s.keys {
		parts[i] = p.String()
	}
	return strings.Join(parts, " ")
}

func (s *aclSelector) channelsString() string {
	if s.allChannels {
		return "&*"
	}
	parts := make([]string, len(s.channels))
	for i, c := range s.channels {
		parts[i] = "&" + c
	}
	return strings.Join(parts, " ")
}

// describe is the selector in rules (ACLDescribeSelector).
func (s *aclSelector) describe() string {
	var b strings.Builder
	if s.allKeys {
		b.WriteString("~* ")
	} else {
		for _, p := range s.keys {
			b.WriteString(p.String() + " ")
		}
	}
	if s.allChannels {
		b.WriteString("&* ")
	} else {
		b.WriteString("resetchannels ")
		for _, c := range s.channels {
			b.WriteString("&" + c + " ")
		}
	}
	b.WriteString(s.commandRules())
	return b.String()
}

// ACLUser is a user: flags, passwords (SHA-256, hex) and selectors, the
// root one first.
type ACLUser struct {
	name      string
	enabled   bool
	nopass    bool
	sanitize  int // 0, or 1 for skip-sanitize-payload, 2 for sanitize-payload
	passwords []string
	selectors []*aclSelector
	// open: a selector allows every command, key and channel, so no
	// command needs checking (the default user's usual case); perms is
	// Permissions', made once, as the rest is, by update.
	open  bool
	perms string
}

// newACLUser is a user as ACL SETUSER creates it: off, allowed nothing.
func newACLUser(name string) *ACLUser {
	return &ACLUser{name: name, selectors: []*aclSelector{newSelector()}}
}

// Enabled tells whether the user is on.
func (u *ACLUser) Enabled() bool { return u.enabled }

// NoPass tells whether any password authenticates the user.
func (u *ACLUser) NoPass() bool { return u.nopass }

// Open tells whether the user may run every command on every key and
// channel.
func (u *ACLUser) Open() bool { return u.open }

func (u *ACLUser) clone(name string) *ACLUser {
	c := *u
	c.name = name
	c.passwords = slices.Clone(u.passwords)
	c.selectors = make([]*aclSelector, len(u.selectors))
	for i, s := range u.selectors {
		c.selectors[i] = s.clone()
	}
	return &c
}

// update derives what the user's rules imply, once they are set.
func (u *ACLUser) update() {
	u.open = false
	var b strings.Builder
	for i, s := range u.selectors {
		if s.allCommands && s.allKeys && s.allChannels {
			u.open = true
		}
		if i == 0 {
			b.WriteString(s.describe())
		} else {
			b.WriteString(" (" + s.describe() + ")")
		}
	}
	u.perms = b.String()
}

func hashPassword(p string) string {
	h := sha256.Sum256([]byte(p))
	return hex.EncodeToString(h[:])
}

func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < 'a' || c > 'f') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// set applies one rule to the user (ACLSetUser).
func (u *ACLUser) set(op string) error {
	if op == "" {
		return nil
	}
	switch {
	case strings.EqualFold(op, "on"):
		u.enabled = true
	case strings.EqualFold(op, "off"):
		u.enabled = false
	case strings.EqualFold(op, "skip-sanitize-payload"):
		u.sanitize = 1
	case strings.EqualFold(op, "sanitize-payload"):
		u.sanitize = 2
	case strings.EqualFold(op, "nopass"):
		u.nopass, u.passwords = true, nil
	case strings.EqualFold(op, "resetpass"):
		u.nopass, u.passwords = false, nil
	case op[0] == '>' || op[0] == '#':
		p := op[1:]
		if op[0] == '>' {
			p = hashPassword(p)
		} else if !validHash(p) {
			return errACLBadHash
		}
		if !slices.Contains(u.passwords, p) {
			u.passwords = append(u.passwords, p)
		}
		u.nopass = false
	case op[0] == '<' || op[0] == '!':
		p := op[1:]
		if op[0] == '<' {
			p = hashPassword(p)
		} else if !validHash(p) {
			return errACLBadHash
		}
		i := slices.Index(u.passwords, p)
		if i < 0 {
			return errACLNoSuchPass
		}
		u.passwords = slices.Delete(u.passwords, i, i+1)
	case op[0] == '(' && op[len(op)-1] == ')':
		s := newSelector()
		for _, o := range strings.Fields(op[1 : len(op)-1]) {
			if err := s.set(o); err != nil {
				return err
			}
		}
		u.selectors = append(u.selectors, s)
	case strings.EqualFold(op, "clearselectors"):
		u.selectors = u.selectors[:1]
	case strings.EqualFold(op, "reset"):
		for _, o := range []string{"resetpass", "resetkeys", "resetchannels", "off", "sanitize-payload", "clearselectors", "-@all"} {
			if err := u.set(o); err != nil {
				return err
			}
		}
	default:
		return u.selectors[0].set(op)
	}
	return nil
}

var aclUserFlagNames = []string{"on", "off", "nopass", "skip-sanitize-payload", "sanitize-payload"}

// Flags are the user's flags, in Redis's order.
func (u *ACLUser) Flags() []string {
	has := []bool{u.enabled, !u.enabled, u.nopass, u.sanitize == 1, u.sanitize == 2}
	var out []string
	for i, f := range aclUserFlagNames {
		if has[i] {
			out = append(out, f)
		}
	}
	return out
}

// Passwords are the user's password hashes.
func (u *ACLUser) Passwords() []string { return slices.Clone(u.passwords) }

// Describe is the user in rules, as ACL LIST gives it after the name
// (ACLDescribeUser).
func (u *ACLUser) Describe() string {
	var b strings.Builder
	for _, f := range u.Flags() {
		b.WriteString(f + " ")
	}
	for _, p := range u.passwords {
		b.WriteString("#" + p + " ")
	}
	b.WriteString(u.Permissions())
	return b.String()
}

// ACLSelectorInfo is a selector as ACL GETUSER shows it.
type ACLSelectorInfo struct{ Commands, Keys, Channels string }

// Selectors are the user's selectors for ACL GETUSER, the root one first.
func (u *ACLUser) Selectors() []ACLSelectorInfo {
	out := make([]ACLSelectorInfo, len(u.selectors))
	for i, s := range u.selectors {
		out[i] = ACLSelectorInfo{s.commandRules(), s.keysString(), s.channelsString()}
	}
	return out
}

// Authenticates tells whether password logs the user in (an enabled user
// with nopass, or one of its passwords).
func (u *ACLUser) Authenticates(password []byte) bool {
	if u == nil || !u.enabled {
		return false
	}
	if u.nopass {
		return true
	}
	h := sha256.Sum256(password)
	got := []byte(hex.EncodeToString(h[:]))
	ok := false
	for _, p := range u.passwords {
		// Every hash is compared, in constant time each.
		if subtle.ConstantTimeCompare([]byte(p), got) == 1 {
			ok = true
		}
	}
	return ok
}

// Check tells whether the user may run args (a whole command, name
// first): ACLOK, or why not and the position of the argument at fault (a
// key or channel). A command the table does not know is allowed: it fails
// on its own.
func (u *ACLUser) Check(args [][]byte) (result, pos int) {
	if u.open {
		return ACLOK, 0
	}
	c := aclCommandTable().command(args)
	if c == nil {
		return ACLOK, 0
	}
	return u.check(c, args)
}

func (u *ACLUser) check(c *aclCmd, args [][]byte) (result, pos int) {
	result = ACLDeniedCmd
	var keys []KeyRef
	keysDone := false
	for _, s := range u.selectors {
		r, p := s.check(c, args, &keys, &keysDone)
		if r == ACLOK {
			return ACLOK, 0
		}
		if r > result || (r == result && p > pos) {
			result, pos = r, p
		}
	}
	return result, pos
}

func (s *aclSelector) check(c *aclCmd, args [][]byte, keys *[]KeyRef, keysDone *bool) (int, int) {
	if !s.allCommands && !c.noAuth && !s.bit(c.id) {
		allowed := false
		idx := 1
		if c.parent != nil {
			idx = 2
		}
		if len(args) > idx {
			for _, a := range s.firstArgs[c.id] {
				if strings.EqualFold(a, string(args[idx])) {
					allowed = true
				}
			}
		}
		if !allowed {
			return ACLDeniedCmd, 0
		}
	}
	if !s.allKeys {
		if !*keysDone {
			*keys, *keysDone = KeyRefs(args), true
		}
		for _, k := range *keys {
			if !s.keyAllowed(args[k.Pos], k.Flags) {
				return ACLDeniedKey, k.Pos
			}
		}
	}
	if !s.allChannels {
		for _, ch := range channelRefs(c.name, args) {
			if !aclChannelAllowed(s.channels, args[ch.pos], ch.pattern) {
				return ACLDeniedChannel, ch.pos
			}
		}
	}
	return ACLOK, 0
}

func (s *aclSelector) keyAllowed(key []byte, flags KeyFlags) bool {
	need := 0
	if flags&KeyAccess != 0 {
		need |= aclRead
	}
	if flags&(KeyInsert|KeyDelete|KeyUpdate) != 0 {
		need |= aclWrite
	}
	for _, p := range s.keys {
		if p.flags&need == need && MatchGlob([]byte(p.pattern), key) {
			return true
		}
	}
	return false
}

func aclChannelAllowed(allowed []string, channel []byte, pattern bool) bool {
	for _, p := range allowed {
		if (pattern && p == string(channel)) || (!pattern && MatchGlob([]byte(p), channel)) {
			return true
		}
	}
	return false
}

// ChannelAllowed tells whether the user may use channel (a pattern's
// must be one of the user's patterns as it is).
func (u *ACLUser) ChannelAllowed(channel []byte, pattern bool) bool {
	for _, s := range u.selectors {
		if s.allChannels || aclChannelAllowed(s.channels, channel, pattern) {
			return true
		}
	}
	return false
}

type channelRef struct {
	pos     int
	pattern bool
}

// channelRefs are the channels a command publishes or subscribes to (the
// ones ACL checks; unsubscribing is never refused).
func channelRefs(name string, args [][]byte) []channelRef {
	var out []channelRef
	switch name {
	case "publish", "spublish":
		if len(args) > 1 {
			out = append(out, channelRef{1, false})
		}
	case "subscribe", "ssubscribe", "psubscribe":
		for i := 1; i < len(args); i++ {
			out = append(out, channelRef{i, name == "psubscribe"})
		}
	}
	return out
}

// ACLDeniedText is the NOPERM error for a refused command, as Redis
// words it at the top level.
func ACLDeniedText(result int, command string) string {
	switch result {
	case ACLDeniedCmd:
		return fmt.Sprintf("NOPERM this user has no permissions to run the '%s' command", command)
	case ACLDeniedKey:
		return "NOPERM this user has no permissions to access one of the keys used as arguments"
	case ACLDeniedChannel:
		return "NOPERM this user has no permissions to access one of the channels used as arguments"
	}
	return "NOPERM no permission"
}

// ACLCommandName is the full name of the command args run, for errors
// and the ACL log ("config|get"), or "" for an unknown command.
func ACLCommandName(args [][]byte) string {
	if c := aclCommandTable().command(args); c != nil {
		return c.name
	}
	return ""
}

// ACLCategoryCommands lists the commands (and subcommands) of a category,
// by name; false for an unknown category.
func ACLCategoryCommands(category string) ([]string, bool) {
	cat, ok := aclCategory(category)
	if !ok {
		return nil, false
	}
	var out []string
	aclCommandTable().inCategory(cat, func(c *aclCmd) { out = append(out, c.name) })
	return out, true
}

// ACLDryRun is ACL DRYRUN's answer for user and args: "" when the command
// is allowed, else Redis's sentence saying why; err when the command is
// unknown or has the wrong number of arguments.
func ACLDryRun(u *ACLUser, args [][]byte) (string, error) {
	c := aclCommandTable().command(args)
	if c == nil {
		return "", fmt.Errorf("ERR Command '%s' not found", args[0])
	}
	if !arityOK(c.arity, len(args)) {
		return "", fmt.Errorf("ERR wrong number of arguments for '%s' command", c.name)
	}
	if u.open {
		return "", nil
	}
	switch r, pos := u.check(c, args); r {
	case ACLDeniedCmd:
		return fmt.Sprintf("This user has no permissions to run the '%s' command", c.name), nil
	case ACLDeniedKey:
		return fmt.Sprintf("This user has no permissions to access the '%s' key", args[pos]), nil
	case ACLDeniedChannel:
		return fmt.Sprintf("This user has no permissions to access the '%s' channel", args[pos]), nil
	}
	return "", nil
}

// ACLUsers is a set of users, never changed once made: a change makes a
// new set (SetUser, DelUsers). Version counts the changes the cluster
// made (0: the node's own default user only).
type ACLUsers struct {
	Version uint64
	users   map[string]*ACLUser
}

// DefaultACLUser is the default user a node starts with: every command,
// key and channel, with the password requirepass if it is not empty, or
// none.
func DefaultACLUser(requirepass string) *ACLUser {
	u := newACLUser("default")
	for _, op := range []string{"+@all", "~*", "&*", "on", "nopass"} {
		if err := u.set(op); err != nil {
			panic(err)
		}
	}
	if requirepass != "" {
		if err := u.set(">" + requirepass); err != nil {
			panic(err)
		}
	}
	u.update()
	return u
}

// NewACLUsers is a set of users that holds only def, the default user.
func NewACLUsers(def *ACLUser) *ACLUsers {
	return &ACLUsers{users: map[string]*ACLUser{"default": def}}
}

// Get returns the user named name, or nil.
func (us *ACLUsers) Get(name string) *ACLUser { return us.users[name] }

// Default is the default user.
func (us *ACLUsers) Default() *ACLUser { return us.users["default"] }

// Names are the users' names, in byte order.
func (us *ACLUsers) Names() []string {
	names := make([]string, 0, len(us.users))
	for n := range us.users {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// List is ACL LIST's lines: "user <name> <rules>", by name.
func (us *ACLUsers) List() []string {
	var out []string
	for _, n := range us.Names() {
		out = append(out, "user "+n+" "+us.users[n].Describe())
	}
	return out
}

// ACLRuleError is a refused ACL SETUSER: its text is Redis's error.
type ACLRuleError struct{ Text string }

func (e *ACLRuleError) Error() string { return e.Text }

// mergeSelectorArgs joins a selector written over several arguments,
// "(+get" "~k*)", into one (ACLMergeSelectorArguments).
func mergeSelectorArgs(ops []string) ([]string, error) {
	var out []string
	open := -1
	var sel string
	for i, op := range ops {
		if open < 0 && len(op) > 0 && op[0] == '(' && op[len(op)-1] != ')' {
			open, sel = i, op
			continue
		}
		if open >= 0 {
			sel += " " + op
			if len(op) > 0 && op[len(op)-1] == ')' {
				out = append(out, sel)
				open = -1
			}
			continue
		}
		out = append(out, op)
	}
	if open >= 0 {
		return nil, &ACLRuleError{fmt.Sprintf("ERR Unmatched parenthesis in acl selector starting at '%s'.", ops[open])}
	}
	return out, nil
}

// SetUser returns the users with name created or changed by ops (ACL
// SETUSER's rules), all or nothing: an *ACLRuleError names the first rule
// refused.
func (us *ACLUsers) SetUser(name string, ops []string) (*ACLUsers, error) {
	if hasSpaces(name) {
		return nil, &ACLRuleError{"ERR Usernames can't contain spaces or null characters"}
	}
	ops, err := mergeSelectorArgs(ops)
	if err != nil {
		return nil, err
	}
	var u *ACLUser
	if old := us.users[name]; old != nil {
		u = old.clone(name)
	} else {
		u = newACLUser(name)
	}
	for _, op := range ops {
		if err := u.set(op); err != nil {
			return nil, &ACLRuleError{fmt.Sprintf("ERR Error in ACL SETUSER modifier '%s': %s", op, err)}
		}
	}
	u.update()
	next := &ACLUsers{Version: us.Version, users: make(map[string]*ACLUser, len(us.users)+1)}
	for n, x := range us.users {
		next.users[n] = x
	}
	next.users[name] = u
	return next, nil
}

// DelUsers returns the users without names, and how many of them there
// were. The default user cannot be removed.
func (us *ACLUsers) DelUsers(names []string) (*ACLUsers, int, error) {
	if slices.Contains(names, "default") {
		return nil, 0, &ACLRuleError{"ERR The 'default' user cannot be removed"}
	}
	next := &ACLUsers{Version: us.Version, users: make(map[string]*ACLUser, len(us.users))}
	for n, x := range us.users {
		next.users[n] = x
	}
	deleted := 0
	for _, n := range names {
		if _, ok := next.users[n]; ok {
			delete(next.users, n)
			deleted++
		}
	}
	return next, deleted, nil
}

// ParseACLUsers reads users from ACL LIST's lines, as ACL LOAD reads an
// ACL file; a set without a default user gets def.
func ParseACLUsers(version uint64, lines []string, def *ACLUser) (*ACLUsers, error) {
	us := &ACLUsers{Version: version, users: map[string]*ACLUser{}}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "user" {
			return nil, fmt.Errorf("acl: line %q: not a user", l)
		}
		if _, dup := us.users[f[1]]; dup {
			return nil, fmt.Errorf("acl: user %q twice", f[1])
		}
		next, err := (&ACLUsers{users: map[string]*ACLUser{}}).SetUser(f[1], f[2:])
		if err != nil {
			return nil, fmt.Errorf("acl: user %q: %v", f[1], err)
		}
		us.users[f[1]] = next.users[f[1]]
	}
	if us.users["default"] == nil {
		us.users["default"] = def
	}
	return us, nil
}

// Permissions are the user's selectors in rules, without its flags and
// passwords: what a script's calls are checked against (ScriptACL).
func (u *ACLUser) Permissions() string { return u.perms }

var (
	scriptUsersMu sync.Mutex
	scriptUsers   = map[string]*ACLUser{}
)

// scriptUser is a user with the permissions rules (ACLUser.Permissions
// made them), made once for the same rules.
func scriptUser(rules string) (*ACLUser, error) {
	scriptUsersMu.Lock()
	defer scriptUsersMu.Unlock()
	if u := scriptUsers[rules]; u != nil {
		return u, nil
	}
	ops, err := mergeSelectorArgs(strings.Fields(rules))
	if err != nil {
		return nil, err
	}
	u := newACLUser("script")
	for _, op := range ops {
		if err := u.set(op); err != nil {
			return nil, fmt.Errorf("rule %q: %v", op, err)
		}
	}
	u.update()
	if len(scriptUsers) >= 256 {
		clear(scriptUsers)
	}
	scriptUsers[rules] = u
	return u, nil
}

// aclScriptDenied ends Redis's error for a script's refused call ("The
// user executing the script " ...).
func aclScriptDenied(result int) string {
	switch result {
	case ACLDeniedCmd:
		return "can't run this command or subcommand"
	case ACLDeniedKey:
		return "can't access at least one of the keys mentioned in the command arguments"
	case ACLDeniedChannel:
		return "can't publish to the channel mentioned in the command"
	}
	return "is lacking the permissions for the command"
}
