package luascript

import (
	"errors"

	"github.com/yuin/gopher-lua/ast"
)

// concatName is the global the rewritten scripts call for '..': a name no
// Lua identifier can spell, so a script cannot name it (it can still reach
// it through _G, and only break its own concatenations).
const concatName = "@concat"

// rewriteConcat replaces every '..' of a chunk with a call of concatName
// (a chain a..b..c with one call of three arguments): the VM's own
// concatenation allocates the whole result at once, with no hook before
// it, and a loop of forty s = s..s would ask for a terabyte. The function
// that replaces it charges the result to the script's budget first.
func rewriteConcat(stmts []ast.Stmt) { rewriteStmts(stmts, 0) }

// maxSyntaxDepth bounds a chunk's nesting (Lua 5.1's is 200 levels of C
// calls in its parser): gopher-lua's compiler recurses through the syntax
// tree, and a tree millions deep ("- - - ... x", a long chain of '+')
// would exhaust the goroutine's stack, which no recover survives. The
// walk below stops there (errTooDeep), long before.
const maxSyntaxDepth = 1000

// errTooDeep is what the walk panics with past maxSyntaxDepth.
var errTooDeep = errors.New("chunk has too many syntax levels")

func rewriteStmts(stmts []ast.Stmt, depth int) {
	for _, s := range stmts {
		rewriteStmt(s, depth)
	}
}

func rewriteStmt(s ast.Stmt, depth int) {
	depth++
	if depth > maxSyntaxDepth {
		panic(errTooDeep)
	}
	switch s := s.(type) {
	case *ast.AssignStmt:
		rewriteExprs(s.Lhs, depth)
		rewriteExprs(s.Rhs, depth)
	case *ast.LocalAssignStmt:
		rewriteExprs(s.Exprs, depth)
	case *ast.FuncCallStmt:
		s.Expr = rewriteExpr(s.Expr, depth)
	case *ast.DoBlockStmt:
		rewriteStmts(s.Stmts, depth)
	case *ast.WhileStmt:
		s.Condition = rewriteExpr(s.Condition, depth)
		rewriteStmts(s.Stmts, depth)
	case *ast.RepeatStmt:
		s.Condition = rewriteExpr(s.Condition, depth)
		rewriteStmts(s.Stmts, depth)
	case *ast.IfStmt:
		s.Condition = rewriteExpr(s.Condition, depth)
		rewriteStmts(s.Then, depth)
		rewriteStmts(s.Else, depth)
	case *ast.NumberForStmt:
		s.Init, s.Limit = rewriteExpr(s.Init, depth), rewriteExpr(s.Limit, depth)
		if s.Step != nil {
			s.Step = rewriteExpr(s.Step, depth)
		}
		rewriteStmts(s.Stmts, depth)
	case *ast.GenericForStmt:
		rewriteExprs(s.Exprs, depth)
		rewriteStmts(s.Stmts, depth)
	case *ast.FuncDefStmt:
		if s.Name != nil {
			s.Name.Func = rewriteExpr(s.Name.Func, depth)
			if s.Name.Receiver != nil {
				s.Name.Receiver = rewriteExpr(s.Name.Receiver, depth)
			}
		}
		rewriteStmts(s.Func.Stmts, depth)
	case *ast.ReturnStmt:
		rewriteExprs(s.Exprs, depth)
	}
}

func rewriteExprs(es []ast.Expr, depth int) {
	for i, e := range es {
		es[i] = rewriteExpr(e, depth)
	}
}

func rewriteExpr(e ast.Expr, depth int) ast.Expr {
	depth++
	if depth > maxSyntaxDepth {
		panic(errTooDeep)
	}
	switch x := e.(type) {
	case nil:
		return nil
	case *ast.StringConcatOpExpr:
		// '..' is right-associative: a..b..c is a..(b..c); gather the
		// chain's operands left to right, as the VM evaluates them.
		var args []ast.Expr
		var cur ast.Expr = x
		for {
			c, ok := cur.(*ast.StringConcatOpExpr)
			if !ok {
				args = append(args, rewriteExpr(cur, depth))
				break
			}
			args = append(args, rewriteExpr(c.Lhs, depth))
			cur = c.Rhs
		}
		fn := &ast.IdentExpr{Value: concatName}
		fn.SetLine(x.Line())
		fn.SetLastLine(x.LastLine())
		call := &ast.FuncCallExpr{Func: fn, Args: args, AdjustRet: true}
		call.SetLine(x.Line())
		call.SetLastLine(x.LastLine())
		return call
	case *ast.AttrGetExpr:
		x.Object, x.Key = rewriteExpr(x.Object, depth), rewriteExpr(x.Key, depth)
	case *ast.TableExpr:
		for _, f := range x.Fields {
			f.Key, f.Value = rewriteExpr(f.Key, depth), rewriteExpr(f.Value, depth)
		}
	case *ast.FuncCallExpr:
		x.Func, x.Receiver = rewriteExpr(x.Func, depth), rewriteExpr(x.Receiver, depth)
		rewriteExprs(x.Args, depth)
	case *ast.LogicalOpExpr:
		x.Lhs, x.Rhs = rewriteExpr(x.Lhs, depth), rewriteExpr(x.Rhs, depth)
	case *ast.RelationalOpExpr:
		x.Lhs, x.Rhs = rewriteExpr(x.Lhs, depth), rewriteExpr(x.Rhs, depth)
	case *ast.ArithmeticOpExpr:
		x.Lhs, x.Rhs = rewriteExpr(x.Lhs, depth), rewriteExpr(x.Rhs, depth)
	case *ast.UnaryMinusOpExpr:
		x.Expr = rewriteExpr(x.Expr, depth)
	case *ast.UnaryNotOpExpr:
		x.Expr = rewriteExpr(x.Expr, depth)
	case *ast.UnaryLenOpExpr:
		x.Expr = rewriteExpr(x.Expr, depth)
	case *ast.FunctionExpr:
		rewriteStmts(x.Stmts, depth)
	}
	return e
}
