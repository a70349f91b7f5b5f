-- wrk script for bench/gateway.sh: every request carries the next of the
-- tokens in the file $BENCH_TOKENS (one per line), so consecutive requests
-- come from different users. Each wrk thread starts at its own offset.
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do
    if #line > 0 then tokens[#tokens + 1] = "Bearer " .. line end
end
local i = 0

function setup(thread)
    thread:set("offset", math.random(#tokens))
end

function init(args)
    i = tonumber(offset) or 0
end

function request()
    i = i % #tokens + 1
    return wrk.format(nil, nil, { ["Authorization"] = tokens[i] })
end
