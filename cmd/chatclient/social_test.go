package main

import "testing"

// TestConsoleSocial: the social commands as a person types them: a search,
// a block and the block list, a private group made with newgroup, a join
// that becomes a request, approve, members with roles, promote, kick.
func TestConsoleSocial(t *testing.T) {
	addr := startServer(t)
	fran := startConsole(t, "fran", addr)
	gus := startConsole(t, "gus", addr)
	fran.send("2", "fran", "pw-f")
	fid := fran.expect(`fran registered, your user id is (\d+)`)[1]
	gus.send("2", "gus", "pw-g")
	gid := gus.expect(`gus registered, your user id is (\d+)`)[1]
	fran.send("1", fid, "pw-f")
	fran.expect(`type help for commands`)
	gus.send("1", gid, "pw-g")
	gus.expect(`type help for commands`)

	gus.send("search:fr")
	gus.expect(`users-+\n` + fid + ` fran\n`)
	gus.send("block:" + fid)
	gus.expect(`\* blocked fran\(` + fid + `\)`)
	gus.send("blocked")
	gus.expect(`blocked-+\n` + fid + ` fran\n`)
	fran.send("chat:" + gid + ":hello?")
	fran.expect(`error: refused`)
	gus.send("unblock:" + fid)
	gus.expect(`\* unblocked fran\(` + fid + `\)`)

	fran.send("newgroup:secret:members only:private")
	grp := fran.expect(`\* created group (\d+) "secret" \(private\)`)[1]
	gus.send("addgroup:" + grp)
	gus.expect(`error: .*private`)
	gus.send("ask:" + grp)
	gus.expect(`\* asked to join group ` + grp)
	fran.expect(`\* gus\(` + gid + `\) asks to join group ` + grp)
	fran.send("approve:" + grp + ":" + gid)
	fran.expect(`\* admitted gus\(` + gid + `\) to group ` + grp)
	gus.expect(`\* gus\(` + gid + `\) joined group ` + grp)
	fran.send("promote:" + grp + ":" + gid)
	fran.expect(`\* gus\(` + gid + `\) is an admin of group ` + grp)
	gus.expect(`\* gus\(` + gid + `\) is now admin in group ` + grp)
	fran.send("members:" + grp)
	fran.expect(`group ` + grp + ` "secret": members only, private, history joined, you are creator\n` +
		fid + ` fran creator online\n` + gid + ` gus admin `)
	fran.send("kick:" + grp + ":" + gid)
	fran.expect(`\* removed gus\(` + gid + `\) from group ` + grp)
	gus.expect(`\* gus\(` + gid + `\) was removed from group ` + grp)
	gus.send("groupchat:" + grp + ":still here?")
	gus.expect(`error: `)
}
