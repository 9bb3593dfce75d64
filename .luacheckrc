std = "lua54"
max_line_length = 120
files["tests/spec"] = { std = "+busted" }
files["tests/e2e"] = { std = "+busted" }
