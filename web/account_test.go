package web_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// testAccount: the account panel (issues 10 and 11) and a group's settings,
// used as a person would and checked from the outside. hal renames himself
// (a taken name is explained under the form) and his friend ivy sees the
// new name; hal edits his group's name, description and history setting
// and ivy, a member, sees them and no edit button. hal changes his
// password: his second tab is logged out, his first goes on and a reload
// resumes it with the new token, the old password is refused and the new
// one accepted. "Log out everywhere" sends both tabs to the login form and
// the token they held no longer logs in.
func testAccount(t *testing.T, browser context.Context, node string) {
	hal, ivy := newPerson(t, browser, "hal"), newPerson(t, browser, "ivy")
	h, v := hal.open(node), ivy.open(node)
	h.register()
	v.register()
	conv := direct(hal.id, ivy.id)
	befriend(h, v)

	// The panel opens from the name at the top left (from the list, as on
	// a phone: Escape closes the conversation).
	h.do(chromedp.KeyEvent(kb.Escape))
	h.click("#me-toggle")
	h.waitJS("the name filled in", `document.getElementById('account-name').value === 'hal'`)
	rename := func(name string) {
		h.clear("#account-name")
		h.typeText("#account-name", name+"\r")
	}
	rename("ivy")
	h.waitJS("a taken name explained", `document.querySelector('#account-name-form + .note.error')?.textContent === 'That name is taken; pick another.'`)
	rename("hal 9000")
	h.waitJS("the new name saved", `document.querySelector('#account-name-form + .note:not(.error)')?.textContent.startsWith('Saved') && document.getElementById('me-name').textContent === 'hal 9000'`)
	v.waitJS("ivy sees hal's new name", fmt.Sprintf(`document.querySelector('#convs [data-conv=%q] .conv-name')?.textContent === 'hal 9000'`, conv))
	h.screenshot("account", 1200, 760, "")
	h.screenshot("account-phone", 390, 844, "web-client-account.png")
	h.do(chromedp.EmulateViewport(1200, 800))
	h.click("#me-toggle")

	// Group settings, by the creator; a member sees the result.
	gid := groupWith(h, v, "book club", "we read")
	h.click("#members-toggle")
	h.click("#group-edit-toggle")
	h.waitJS("the settings filled in", `document.getElementById('group-edit-name').value === 'book club' && document.getElementById('group-edit-desc').value === 'we read'`)
	h.clear("#group-edit-name")
	h.clear("#group-edit-desc")
	h.typeText("#group-edit-name", "reading circle")
	h.typeText("#group-edit-desc", "one book a month")
	h.do(chromedp.SetValue(chromedp.CSS("#group-edit-history"), "all"))
	h.click(`#group-edit button[type=submit]`)
	h.waitJS("the settings saved", `document.querySelector('#group-edit .note')?.textContent === 'Saved.'`)
	h.screenshot("group-settings", 1200, 760, "")
	h.screenshot("group-settings-phone", 390, 844, "")
	h.do(chromedp.EmulateViewport(1200, 800))
	v.waitJS("ivy sees the new group name", fmt.Sprintf(`document.querySelector('#convs [data-conv="g:%s"] .conv-name')?.textContent === 'reading circle'`, gid))
	v.click("#members-toggle")
	v.waitJS("ivy sees the description and the history setting", `document.getElementById('group-desc')?.textContent === 'one book a month' && document.querySelector('#members .settings')?.textContent.includes('new members see the whole history')`)
	v.waitJS("no group settings for a member", `!document.querySelector('#members #group-edit-toggle, #members #group-edit')`)

	// A new password: the other tab is logged out, this one goes on.
	h2 := hal.open(node)
	h2.waitJS("the second tab logged in", `!document.getElementById('chat').hidden && document.getElementById('me-id').textContent`)
	h.click("#me-toggle")
	h.typeText("#account-old-pw", "wrong")
	h.typeText("#account-new-pw", "new-pw-hal\r")
	h.waitJS("a wrong current password explained", `document.querySelector('#account-pw-form + .note.error')?.textContent === 'Your current password is wrong.'`)
	h.clear("#account-old-pw")
	h.clear("#account-new-pw")
	h.typeText("#account-old-pw", hal.pw)
	h.typeText("#account-new-pw", "new-pw-hal\r")
	h.waitJS("the password changed", `document.querySelector('#account-pw-form + .note:not(.error)')?.textContent.startsWith('Changed')`)
	h2.waitJS("the second tab logged out", `!document.getElementById('auth').hidden && document.getElementById('auth-error').textContent.includes('logged out')`)
	h.do(chromedp.Reload())
	h.waitJS("the first tab resumed with its new token", `!document.getElementById('chat').hidden && document.getElementById('me-name').textContent === 'hal 9000'`)
	h2.typeText("#login-pw", hal.pw+"\r")
	h2.waitJS("the old password refused", `document.getElementById('auth-error').textContent === 'Wrong user id or password.'`)
	h2.clear("#login-pw")
	h2.typeText("#login-pw", "new-pw-hal\r")
	h2.waitJS("the new password accepted", `!document.getElementById('chat').hidden && document.getElementById('me-name').textContent === 'hal 9000'`)

	// Log out everywhere: both tabs at the login form, the token dead.
	var token string
	h.eval(`localStorage.getItem('clusterchat.token')`, &token)
	h.click("#me-toggle")
	h.click("#logout-all")
	h.waitJS("this tab at the login form", `!document.getElementById('auth').hidden && document.getElementById('auth-error').textContent === 'You have logged out on every device.'`)
	h2.waitJS("the other tab at the login form", `!document.getElementById('auth').hidden && document.getElementById('auth-error').textContent.includes('logged out on every device')`)
	h2.eval(fmt.Sprintf(`localStorage.setItem('clusterchat.token', %q), true`, token), new(bool))
	h2.do(chromedp.Reload())
	h2.waitJS("the old token refused", `!document.getElementById('auth').hidden && document.getElementById('auth-error').textContent === 'Your session has ended; please log in again.'`)
}

// clear empties the text field sel, as selecting all and deleting would
// (chromedp's SetValue cannot set an empty value).
func (tb *tab) clear(sel string) {
	tb.p.t.Helper()
	tb.eval(fmt.Sprintf(`(document.querySelector(%q).value = '') === ''`, sel), new(bool))
}

// befriend has a ask b for friendship through the Add friend form and b
// accept it from the People panel; it returns once a shows b online.
func befriend(a, b *tab) {
	a.p.t.Helper()
	a.action("friend", strconv.FormatInt(b.p.id, 10))
	b.waitJS("a request on "+b.p.name+"'s People button", `document.getElementById('people-badge').textContent === '1'`)
	b.click("#people-toggle")
	b.click(fmt.Sprintf(`#requests [data-from="%d"] button`, a.p.id)) // Accept
	b.click("#people-toggle")
	a.waitJS(b.p.name+" a friend, online", fmt.Sprintf(`document.querySelector('#convs [data-conv=%q] .dot.on')`, direct(a.p.id, b.p.id)))
}

// groupWith has a create a public group through the New group form and b
// join it by its id; it returns the id once the group is open for b.
func groupWith(a, b *tab, name, desc string) string {
	a.p.t.Helper()
	a.action("create", name, desc)
	var hash string
	a.waitJS("the group open", `location.hash.startsWith('#g:')`)
	a.eval(`location.hash.slice(1)`, &hash)
	gid := strings.TrimPrefix(hash, "g:")
	b.action("join", gid)
	b.waitJS("the group open for "+b.p.name, fmt.Sprintf(`location.hash === '#g:%s'`, gid))
	return gid
}
