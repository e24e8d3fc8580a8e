package web_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// testSocial: the social views (issue 11) as people use them. gus finds
// fran by name and asks her to be friends; she accepts from her People
// panel. gus blocks fran from their conversation: her message is refused;
// he unblocks her from his block list. fran creates a private group; gus's
// join becomes a request, which fran approves from the members panel, then
// makes him an admin, then removes him: his page drops the group.
func testSocial(t *testing.T, browser context.Context, node string) {
	fran, gus := newPerson(t, browser, "fran"), newPerson(t, browser, "gus")
	f, g := fran.open(node), gus.open(node)
	f.register()
	g.register()
	conv := direct(fran.id, gus.id)

	g.click("#people-toggle")
	g.typeText("#people-search", "fra\r")
	g.click(fmt.Sprintf(`#found [data-user="%d"] button`, fran.id)) // Add friend
	g.waitJS("the request listed as sent", fmt.Sprintf(`document.querySelector('#requests [data-to="%d"]')`, fran.id))
	f.waitJS("a request on fran's People button", `document.getElementById('people-badge').textContent === '1'`)
	f.click("#people-toggle")
	f.click(fmt.Sprintf(`#requests [data-from="%d"] button`, gus.id)) // Accept
	f.waitJS("gus in fran's list, online", fmt.Sprintf(`document.querySelector('#convs [data-conv=%q] .dot.on')`, conv))
	g.waitJS("fran in gus's list, online", fmt.Sprintf(`document.querySelector('#convs [data-conv=%q] .dot.on')`, conv))
	g.waitJS("the request gone", fmt.Sprintf(`!document.querySelector('#requests [data-to="%d"]')`, fran.id))

	// Block from the conversation; unblock from the block list.
	g.openConv(conv)
	g.click("#peer-block")
	g.waitJS("listed as blocked", fmt.Sprintf(`document.querySelector('#blocked [data-user="%d"]')`, fran.id))
	f.openConv(conv)
	f.typeText("#text", "are we friends?\r")
	f.waitJS("fran's message refused", `document.querySelector('#messages .msg.failed')?.textContent.includes('does not take your messages')`)
	g.click(fmt.Sprintf(`#blocked [data-user="%d"] button`, fran.id)) // Unblock
	g.waitJS("the block list empty", fmt.Sprintf(`!document.querySelector('#blocked [data-user="%d"]')`, fran.id))
	f.click("#messages .msg.failed .retry")
	g.waitTexts("are we friends?")

	// A private group, made with the form's choice.
	f.click(`[data-action="create"]`)
	f.typeText("#action-form input:nth-of-type(1)", "secret club")
	f.do(chromedp.SetValue(chromedp.CSS(`#action-form select[name="access"]`), "private"))
	f.click(`#action-form button[type=submit]`)
	f.waitJS("the group open", `location.hash.startsWith('#g:')`)
	var hash string
	f.eval(`location.hash.slice(1)`, &hash)
	gid := strings.TrimPrefix(hash, "g:")
	g.action("join", gid)
	g.waitJS("asked, not joined", `document.getElementById('banner').textContent.includes('asked to join')`)
	f.click("#members-toggle")
	f.waitJS("private, fran the creator", `document.querySelector('#members .settings')?.textContent.startsWith('Private group') && document.querySelector('#members .settings').textContent.includes('you are creator')`)
	f.click(fmt.Sprintf(`#pending-list [data-user="%d"] button`, gus.id)) // Approve
	g.waitJS("the group in gus's list", fmt.Sprintf(`document.querySelector('#convs [data-conv="g:%s"]')`, gid))
	f.waitJS("gus a member", fmt.Sprintf(`document.querySelector('#member-list [data-user="%d"]')`, gus.id))
	f.send("welcome gus")
	g.openConv("g:" + gid)
	g.waitTexts("welcome gus")
	f.click(fmt.Sprintf(`#member-list [data-user="%d"] button`, gus.id)) // Make admin
	f.waitJS("gus an admin", fmt.Sprintf(`document.querySelector('#member-list [data-user="%d"] .role')?.textContent === 'admin'`, gus.id))
	f.screenshot("group-admin", 1200, 760, "web-client-group-admin.png")
	f.click(fmt.Sprintf(`#member-list [data-user="%d"] button:last-of-type`, gus.id)) // Remove
	g.waitJS("the group gone from gus's page", fmt.Sprintf(`!document.querySelector('#convs [data-conv="g:%s"]')`, gid))
	g.waitJS("gus told", `document.getElementById('banner').textContent.includes('removed from group')`)
	f.waitJS("gus gone from the members", fmt.Sprintf(`!document.querySelector('#member-list [data-user="%d"]')`, gus.id))
}
