/*
 * Rewriter - the one bytecode edit the agent makes: a short prologue at the
 * start of a method, in a class file the JVM hands to the transformer.
 *
 * The one idea: code is only ever inserted at offset 0, and its length is a
 * multiple of 4. So every original instruction moves by the same k bytes:
 * relative branch offsets stay right, switch padding stays right, and only
 * the absolute offsets (exception table, line and local-variable tables,
 * stack-map frames, the offset of a `new` in an uninitialized type) move by
 * k. Two prologues exist:
 *
 *   NOTE    nop* aload_0 [args] invokestatic SondeHooks.h(...)V    (straight)
 *   AROUND  nop*; bipush id; invokestatic SondeHooks.enter(I)Z; ifeq ORIG;
 *           aload_0 args; invokestatic SondeHooks.h(...)R; xreturn;
 *   ORIG:   the original code (a stack-map frame "same as on entry" here)
 *
 * An AROUND hook calls the method again from SondeHooks (the thread is marked so
 * that the second entry runs the original code) and sees the arguments and
 * the result. Anything unexpected in the class file (an unknown attribute
 * in the method's code, a method too long) leaves the method as it was and
 * says why. No third-party bytecode library: the JDK has none, and the edit
 * is small enough to check by hand and with -XX:+BytecodeVerificationLocal.
 */
package sonde.agent;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

final class Rewriter {
    static final String HOOKS = "sun/nio/ch/SondeHooks";

    /** One method to hook. */
    static final class Target {
        final String cls, name, desc, hook, hookDesc;
        final int id;          // SondeHooks id (AROUND), 0 for NOTE
        final boolean around;  // else NOTE
        final boolean args;    // NOTE: pass the arguments too, not only `this`

        Target(String cls, String name, String desc, String hook, String hookDesc, int id,
               boolean around, boolean args) {
            this.cls = cls;
            this.name = name;
            this.desc = desc;
            this.hook = hook;
            this.hookDesc = hookDesc;
            this.id = id;
            this.around = around;
            this.args = args;
        }
    }

    private final byte[] b;
    private int p;
    private String[] utf;
    private int cpCount;
    private final ByteArrayOutputStream extra = new ByteArrayOutputStream();
    private int added;
    private int stackMapName; // cp index of "StackMapTable", 0 until needed

    private Rewriter(byte[] b) {
        this.b = b;
    }

    /**
     * The class rewritten for those targets whose method it has, or null when
     * nothing changed. done[i] gets "on" or the reason target i was left out;
     * it stays null for a target this class does not have.
     */
    static byte[] rewrite(byte[] in, List<Target> targets, String[] done) {
        try {
            return new Rewriter(in).run(targets, done);
        } catch (RuntimeException | IOException e) {
            for (int i = 0; i < done.length; i++)
                if (done[i] == null || done[i].equals("on"))
                    done[i] = "class file not understood: " + e;
            return null;
        }
    }

    private int u1() {
        return b[p++] & 0xff;
    }

    private int u2() {
        int v = ((b[p] & 0xff) << 8) | (b[p + 1] & 0xff);
        p += 2;
        return v;
    }

    private int u4() {
        int v = ((b[p] & 0xff) << 24) | ((b[p + 1] & 0xff) << 16) | ((b[p + 2] & 0xff) << 8)
                | (b[p + 3] & 0xff);
        p += 4;
        return v;
    }

    private void skip(int n) {
        if (n < 0 || p + n > b.length)
            throw new IllegalStateException("truncated");
        p += n;
    }

    private void skipAttributes() {
        int n = u2();
        for (int i = 0; i < n; i++) {
            u2();
            skip(u4());
        }
    }

    private byte[] run(List<Target> targets, String[] done) throws IOException {
        if (u4() != 0xCAFEBABE)
            throw new IllegalStateException("not a class file");
        u2();
        if (u2() < 50)
            throw new IllegalStateException("class file older than Java 6 (no stack maps)");
        readPool();
        int afterPool = p;
        u2();
        String self = className(u2());
        u2();
        skip(2 * u2());
        int nf = u2();
        for (int i = 0; i < nf; i++) {
            skip(6);
            skipAttributes();
        }
        int methodsAt = p;
        int nm = u2();
        ByteArrayOutputStream methods = new ByteArrayOutputStream();
        DataOutputStream mo = new DataOutputStream(methods);
        boolean changed = false;
        mo.writeShort(nm);
        for (int i = 0; i < nm; i++) {
            int start = p;
            int access = u2();
            String name = utf(u2()), desc = utf(u2());
            int ti = find(targets, self, name, desc);
            int attrsAt = p;
            if (ti < 0 || (access & 0x0508) != 0) { // static, native, abstract: not ours
                if (ti >= 0)
                    done[ti] = "method is static, native or abstract";
                skipAttributes();
                mo.write(b, start, p - start);
                continue;
            }
            mo.write(b, start, attrsAt - start);
            int na = u2();
            mo.writeShort(na);
            String why = "no code";
            for (int a = 0; a < na; a++) {
                int nameIdx = u2(), len = u4(), at = p;
                skip(len);
                byte[] code = null;
                if ("Code".equals(utf(nameIdx))) {
                    StringBuilder sb = new StringBuilder();
                    code = rewriteCode(at, len, desc, targets.get(ti), sb);
                    why = code != null ? "on" : sb.toString();
                }
                mo.writeShort(nameIdx);
                if (code == null) {
                    mo.writeInt(len);
                    mo.write(b, at, len);
                } else {
                    mo.writeInt(code.length);
                    mo.write(code);
                    changed = true;
                }
            }
            done[ti] = why;
        }
        if (!changed)
            return null;
        ByteArrayOutputStream out = new ByteArrayOutputStream(b.length + 256);
        DataOutputStream o = new DataOutputStream(out);
        o.write(b, 0, 8);
        o.writeShort(cpCount + added);
        o.write(b, 10, afterPool - 10);
        o.write(extra.toByteArray());
        o.write(b, afterPool, methodsAt - afterPool);
        o.write(methods.toByteArray());
        o.write(b, p, b.length - p);
        return out.toByteArray();
    }

    private static int find(List<Target> ts, String cls, String name, String desc) {
        for (int i = 0; i < ts.size(); i++) {
            Target t = ts.get(i);
            if (t.cls.equals(cls) && t.name.equals(name) && t.desc.equals(desc))
                return i;
        }
        return -1;
    }

    /* --- constant pool ----------------------------------------------------- */

    private int[] classIdx;

    private void readPool() throws IOException {
        cpCount = u2();
        utf = new String[cpCount];
        classIdx = new int[cpCount];
        for (int i = 1; i < cpCount; i++) {
            int tag = u1();
            switch (tag) {
            case 1: {
                int len = u2();
                DataInputStream in = new DataInputStream(new ByteArrayInputStream(b, p - 2, len + 2));
                utf[i] = in.readUTF();
                skip(len);
                break;
            }
            case 3: case 4:
                skip(4);
                break;
            case 5: case 6:
                skip(8);
                i++;
                break;
            case 7:
                classIdx[i] = u2();
                break;
            case 8: case 16: case 19: case 20:
                skip(2);
                break;
            case 9: case 10: case 11: case 12: case 17: case 18:
                skip(4);
                break;
            case 15:
                skip(3);
                break;
            default:
                throw new IllegalStateException("constant pool tag " + tag);
            }
        }
    }

    private String utf(int i) {
        if (i <= 0 || i >= cpCount || utf[i] == null)
            throw new IllegalStateException("bad constant pool index " + i);
        return utf[i];
    }

    private String className(int i) {
        if (i <= 0 || i >= cpCount || classIdx[i] == 0)
            throw new IllegalStateException("bad class index " + i);
        return utf(classIdx[i]);
    }

    private int addUtf(String s) throws IOException {
        DataOutputStream o = new DataOutputStream(extra);
        o.writeByte(1);
        o.writeUTF(s);
        return cpCount + added++;
    }

    private int addRef(int tag, int a, int bb) throws IOException {
        DataOutputStream o = new DataOutputStream(extra);
        o.writeByte(tag);
        o.writeShort(a);
        if (tag != 7)
            o.writeShort(bb);
        return cpCount + added++;
    }

    private int hooksClass;

    private int methodRef(String name, String desc) throws IOException {
        if (hooksClass == 0)
            hooksClass = addRef(7, addUtf(HOOKS), 0);
        int nat = addRef(12, addUtf(name), addUtf(desc));
        int ref = addRef(10, hooksClass, nat);
        if (cpCount + added > 0xffff)
            throw new IllegalStateException("constant pool full");
        return ref;
    }

    /* --- the prologue ---------------------------------------------------------- */

    /** Parameter types of a descriptor, one char each (L for any reference). */
    static String params(String desc) {
        StringBuilder sb = new StringBuilder();
        int i = 1;
        while (desc.charAt(i) != ')') {
            boolean array = desc.charAt(i) == '[';
            while (desc.charAt(i) == '[')
                i++;
            char c = desc.charAt(i);
            if (c == 'L')
                i = desc.indexOf(';', i);
            sb.append(array ? 'L' : c);
            i++;
        }
        return sb.toString();
    }

    static char ret(String desc) {
        char c = desc.charAt(desc.indexOf(')') + 1);
        return c == '[' ? 'L' : c;
    }

    private static int slots(char t) {
        return t == 'J' || t == 'D' ? 2 : 1;
    }

    private static void load(ByteArrayOutputStream c, char t, int slot) {
        int base;
        switch (t) {
        case 'J': base = 0; break;
        case 'F': base = 1; break;
        case 'D': base = 2; break;
        case 'L': base = 3; break;
        default: base = -1; break; // int-like
        }
        int op1 = 0x1a + (base + 1) * 4, opn = 0x15 + base + 1;
        if (slot <= 3) {
            c.write(op1 + slot);
        } else if (slot <= 255) {
            c.write(opn);
            c.write(slot);
        } else {
            c.write(0xc4); // wide
            c.write(opn);
            c.write(slot >> 8);
            c.write(slot);
        }
    }

    private static int returnOp(char t) {
        switch (t) {
        case 'V': return 0xb1;
        case 'J': return 0xad;
        case 'F': return 0xae;
        case 'D': return 0xaf;
        case 'L': return 0xb0;
        default: return 0xac;
        }
    }

    /** The prologue's bytes, padded to a multiple of 4; maxStack[0] gets its depth. */
    private byte[] prologue(Target t, String desc, int[] maxStack) throws IOException {
        ByteArrayOutputStream c = new ByteArrayOutputStream();
        String ps = params(desc);
        int hook = methodRef(t.hook, t.hookDesc);
        int depth = 1;
        if (t.around) {
            int enter = methodRef("enter", "(I)Z");
            c.write(0x10); // bipush id
            c.write(t.id);
            c.write(0xb8);
            c.write(enter >> 8);
            c.write(enter);
            c.write(0x99); // ifeq ORIG (patched below)
            c.write(0);
            c.write(0);
        }
        c.write(0x2a); // aload_0
        if (t.around || t.args) {
            int slot = 1;
            for (int i = 0; i < ps.length(); i++) {
                char ty = ps.charAt(i);
                load(c, ty, slot);
                slot += slots(ty);
                depth += slots(ty);
            }
        }
        c.write(0xb8);
        c.write(hook >> 8);
        c.write(hook);
        if (t.around)
            c.write(returnOp(ret(desc)));
        /* Padding goes first: a nop after the xreturn would be unreachable
         * code without a stack-map frame, which the verifier refuses. */
        int pad = (4 - c.size() % 4) % 4;
        byte[] body = c.toByteArray();
        byte[] code = new byte[pad + body.length];
        System.arraycopy(body, 0, code, pad, body.length);
        if (t.around) {
            int at = pad + 5; // the ifeq
            int off = code.length - at;
            code[at + 1] = (byte) (off >> 8);
            code[at + 2] = (byte) off;
        }
        maxStack[0] = Math.max(depth, slots(ret(desc)));
        return code;
    }

    /* --- the Code attribute ------------------------------------------------------ */

    private byte[] rewriteCode(int at, int len, String desc, Target t, StringBuilder why)
            throws IOException {
        int save = p, end = at + len;
        p = at;
        try {
            int maxStack = u2(), maxLocals = u2(), codeLen = u4();
            int codeAt = p;
            skip(codeLen);
            int[] need = new int[1];
            byte[] pro = prologue(t, desc, need);
            int k = pro.length;
            if (codeLen + k > 65535) {
                why.append("method too long to add ").append(k).append(" bytes");
                return null;
            }
            ByteArrayOutputStream out = new ByteArrayOutputStream(len + 64);
            DataOutputStream o = new DataOutputStream(out);
            o.writeShort(Math.max(maxStack, need[0]));
            o.writeShort(maxLocals);
            o.writeInt(codeLen + k);
            o.write(pro);
            o.write(b, codeAt, codeLen);
            int ne = u2();
            o.writeShort(ne);
            for (int i = 0; i < ne; i++) {
                o.writeShort(u2() + k);
                o.writeShort(u2() + k);
                o.writeShort(u2() + k);
                o.writeShort(u2());
            }
            int na = u2();
            List<byte[]> attrs = new ArrayList<>();
            boolean hadMap = false;
            for (int i = 0; i < na; i++) {
                int nameIdx = u2(), alen = u4(), aat = p;
                skip(alen);
                String name = utf(nameIdx);
                byte[] body;
                switch (name) {
                case "LineNumberTable":
                    body = shiftTable(aat, alen, 4, k);
                    break;
                case "LocalVariableTable":
                case "LocalVariableTypeTable":
                    body = shiftTable(aat, alen, 10, k);
                    break;
                case "StackMapTable":
                    body = stackMap(aat, alen, k, t.around);
                    hadMap = true;
                    break;
                default:
                    why.append("code has a ").append(name).append(" attribute");
                    return null;
                }
                attrs.add(attrBytes(nameIdx, body));
            }
            if (t.around && !hadMap) {
                if (stackMapName == 0)
                    stackMapName = findUtf("StackMapTable");
                if (stackMapName == 0)
                    stackMapName = addUtf("StackMapTable");
                ByteArrayOutputStream sm = new ByteArrayOutputStream();
                DataOutputStream so = new DataOutputStream(sm);
                so.writeShort(1);
                writeFrame(so, k, -1, SAME, null, 0);
                attrs.add(attrBytes(stackMapName, sm.toByteArray()));
            }
            o.writeShort(attrs.size());
            for (byte[] a : attrs)
                o.write(a);
            if (p != end)
                throw new IllegalStateException("Code attribute length mismatch");
            return out.toByteArray();
        } finally {
            p = save;
        }
    }

    private int findUtf(String s) {
        for (int i = 1; i < cpCount; i++)
            if (s.equals(utf[i]))
                return i;
        return 0;
    }

    private static byte[] attrBytes(int nameIdx, byte[] body) throws IOException {
        ByteArrayOutputStream a = new ByteArrayOutputStream(body.length + 6);
        DataOutputStream o = new DataOutputStream(a);
        o.writeShort(nameIdx);
        o.writeInt(body.length);
        o.write(body);
        return a.toByteArray();
    }

    /** A table of u2 count then entries of `size` bytes starting with a u2 pc. */
    private byte[] shiftTable(int at, int len, int size, int k) {
        byte[] t = new byte[len];
        System.arraycopy(b, at, t, 0, len);
        int n = ((t[0] & 0xff) << 8) | (t[1] & 0xff);
        if (2 + n * size != len)
            throw new IllegalStateException("bad table length");
        for (int i = 0; i < n; i++) {
            int o = 2 + i * size, pc = (((t[o] & 0xff) << 8) | (t[o + 1] & 0xff)) + k;
            t[o] = (byte) (pc >> 8);
            t[o + 1] = (byte) pc;
        }
        return t;
    }

    /* --- stack-map frames ---------------------------------------------------------
     * Decoded to (absolute offset, kind, body), moved by k, written back in the
     * shortest form their new offset delta allows. Kinds: -1 same, -2 same
     * locals 1 stack item, 1..3 append n, -(4..6) chop n (as -3 - n), 255 full. */

    private static final int SAME = -1, SAME1 = -2, FULL = 255;

    private byte[] stackMap(int at, int len, int k, boolean addEntry) throws IOException {
        int save = p, end = at + len;
        p = at;
        int n = u2();
        List<int[]> meta = new ArrayList<>();
        List<byte[]> bodies = new ArrayList<>();
        int off = -1;
        for (int i = 0; i < n; i++) {
            int type = u1(), delta, kind;
            ByteArrayOutputStream body = new ByteArrayOutputStream();
            if (type <= 63) {
                delta = type;
                kind = SAME;
            } else if (type <= 127) {
                delta = type - 64;
                kind = SAME1;
                vti(body, k);
            } else if (type < 247) {
                throw new IllegalStateException("reserved frame type " + type);
            } else if (type == 247) {
                delta = u2();
                kind = SAME1;
                vti(body, k);
            } else if (type <= 250) {
                delta = u2();
                kind = -3 - (251 - type);
            } else if (type == 251) {
                delta = u2();
                kind = SAME;
            } else if (type <= 254) {
                delta = u2();
                kind = type - 251;
                for (int j = 0; j < kind; j++)
                    vti(body, k);
            } else {
                delta = u2();
                kind = FULL;
                DataOutputStream bo = new DataOutputStream(body);
                int nl = u2();
                bo.writeShort(nl);
                for (int j = 0; j < nl; j++)
                    vti(body, k);
                int ns = u2();
                bo.writeShort(ns);
                for (int j = 0; j < ns; j++)
                    vti(body, k);
            }
            off = i == 0 ? delta : off + delta + 1;
            meta.add(new int[] {off + k, kind});
            bodies.add(body.toByteArray());
        }
        if (p != end)
            throw new IllegalStateException("StackMapTable length mismatch");
        p = save;
        if (addEntry && (meta.isEmpty() || meta.get(0)[0] != k)) {
            meta.add(0, new int[] {k, SAME});
            bodies.add(0, new byte[0]);
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream(len + 8);
        DataOutputStream o = new DataOutputStream(out);
        o.writeShort(meta.size());
        int prev = -1;
        for (int i = 0; i < meta.size(); i++) {
            int abs = meta.get(i)[0];
            writeFrame(o, abs, prev, meta.get(i)[1], bodies.get(i), i);
            prev = abs;
        }
        return out.toByteArray();
    }

    private static void writeFrame(DataOutputStream o, int abs, int prev, int kind, byte[] body,
                                   int index) throws IOException {
        int delta = index == 0 ? abs : abs - prev - 1;
        if (delta < 0 || delta > 0xffff)
            throw new IllegalStateException("frame offset out of order");
        if (kind == SAME) {
            if (delta <= 63) {
                o.writeByte(delta);
            } else {
                o.writeByte(251);
                o.writeShort(delta);
            }
        } else if (kind == SAME1) {
            if (delta <= 63) {
                o.writeByte(64 + delta);
            } else {
                o.writeByte(247);
                o.writeShort(delta);
            }
        } else if (kind <= -4) {
            o.writeByte(251 - (-3 - kind));
            o.writeShort(delta);
        } else if (kind >= 1 && kind <= 3) {
            o.writeByte(251 + kind);
            o.writeShort(delta);
        } else {
            o.writeByte(255);
            o.writeShort(delta);
        }
        if (body != null)
            o.write(body);
    }

    /** One verification type; an uninitialized one's `new` offset moves by k. */
    private void vti(ByteArrayOutputStream body, int k) {
        int tag = u1();
        body.write(tag);
        if (tag == 7) {
            body.write(b[p]);
            body.write(b[p + 1]);
            skip(2);
        } else if (tag == 8) {
            int off = u2() + k;
            body.write(off >> 8);
            body.write(off);
        } else if (tag > 8) {
            throw new IllegalStateException("verification type " + tag);
        }
    }
}
