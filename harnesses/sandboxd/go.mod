module berth/sandboxd

go 1.22
