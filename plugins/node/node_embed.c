/*
 * node_embed.c - what the plugin carries inside its .so, so it is one file:
 * the compiled node.bpf.c (stripped of DWARF; its BTF stays, CO-RE needs
 * it), handed to the host and to libbpf as it is, and node_ctx.js, the
 * script run in each Node.js process (NUL-terminated).
 * NODE_BPF_OBJ_PATH and NODE_CTX_JS_PATH are set by CMakeLists.txt.
 */
#if !defined(NODE_BPF_OBJ_PATH) || !defined(NODE_CTX_JS_PATH)
#error "NODE_BPF_OBJ_PATH and NODE_CTX_JS_PATH must name the files to embed"
#endif

__asm__("	.section .rodata.node_embed,\"a\",@progbits\n"
	"	.balign 8\n"
	"	.globl node_bpf_obj_start\n"
	"	.hidden node_bpf_obj_start\n"
	"node_bpf_obj_start:\n"
	"	.incbin \"" NODE_BPF_OBJ_PATH "\"\n"
	"	.globl node_bpf_obj_end\n"
	"	.hidden node_bpf_obj_end\n"
	"node_bpf_obj_end:\n"
	"	.balign 8\n"
	"	.globl node_ctx_js_start\n"
	"	.hidden node_ctx_js_start\n"
	"node_ctx_js_start:\n"
	"	.incbin \"" NODE_CTX_JS_PATH "\"\n"
	"	.byte 0\n"
	"	.previous\n");
