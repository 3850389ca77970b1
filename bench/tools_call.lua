-- wrk script: MCP tools/call echo over Streamable HTTP, for saturation runs.
--   wrk -t1 -c32 -d10s -s bench/tools_call.lua http://127.0.0.1:PORT/mcp -- [SESSION_ID [PROTOCOL_VERSION [TOKEN]]]
-- The session id comes from an initialize done beforehand (bench/run.sh uses loadgen --init-only);
-- without one, no Mcp-Session-Id header is sent (fine for the stateless fixture).
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello from the benchmark"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"

function init(args)
   if args[1] and args[1] ~= "" then
      wrk.headers["Mcp-Session-Id"] = args[1]
   end
   wrk.headers["MCP-Protocol-Version"] = args[2] or "2025-11-25"
   if args[3] and args[3] ~= "" then
      wrk.headers["Authorization"] = "Bearer " .. args[3]
   end
end
