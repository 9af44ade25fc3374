(function(){
  var doc=document.documentElement; doc.className=doc.className.replace('nojs','js');
  var table=document.getElementById('claims'); if(!table) return;
  var q=document.getElementById('q'), shown=document.getElementById('shown');
  var chips=[].slice.call(document.querySelectorAll('.chip'));
  var bodies=function(){return [].slice.call(table.tBodies);};
  var state={q:'',verdicts:[],open:[],sort:''};
  var ths=[].slice.call(table.tHead.rows[0].cells);
  function parseHash(){
    var h=location.hash.replace(/^#/,''), s={q:'',verdicts:[],open:[],sort:''};
    h.split('&').forEach(function(kv){
      if(!kv) return; var i=kv.indexOf('='), k=i<0?kv:kv.slice(0,i), v=i<0?'':decodeURIComponent(kv.slice(i+1).replace(/\+/g,' '));
      if(k==='q'||k==='filter') s.q=v;
      else if(k==='verdict') s.verdicts=v?v.toUpperCase().split(','):[];
      else if(k==='open') s.open=v?v.split(','):[];
      else if(k==='sort') s.sort=v;
    });
    return s;
  }
  function writeHash(){
    var parts=[]; if(state.q) parts.push('q='+encodeURIComponent(state.q));
    if(state.verdicts.length) parts.push('verdict='+state.verdicts.join(','));
    if(state.sort) parts.push('sort='+state.sort);
    var h=parts.length?'#'+parts.join('&'):location.pathname+location.search;
    if(history.replaceState) history.replaceState(null,'',h);
  }
  function apply(){
    var words=state.q.toLowerCase().split(/\s+/).filter(Boolean), n=0, all=bodies();
    all.forEach(function(b){
      var text=b.getAttribute('data-text')||'', v=b.getAttribute('data-verdict');
      var ok=words.every(function(w){return text.indexOf(w)>=0;}) &&
             (!state.verdicts.length||state.verdicts.indexOf(v)>=0);
      if(ok){b.removeAttribute('hidden');n++;} else b.setAttribute('hidden','');
    });
    chips.forEach(function(c){c.setAttribute('aria-pressed',state.verdicts.indexOf(c.getAttribute('data-verdict'))>=0?'true':'false');});
    shown.textContent='showing '+n+' of '+all.length+' claims';
    shown.setAttribute('data-shown',n);
  }
  function openIds(ids){
    bodies().forEach(function(b){
      if(ids.indexOf('all')>=0||ids.indexOf(b.getAttribute('data-id'))>=0) b.classList.add('open');
    });
  }
  function load(){
    state=parseHash(); q.value=state.q; apply(); openIds(state.open);
    if(state.sort){
      var key=state.sort.replace(/^-/,''), th=ths.filter(function(h){return h.getAttribute('data-key')===key;})[0];
      if(th) sortBy(th,state.sort.charAt(0)==='-'?-1:1);
    }
    if(state.open.length===1&&state.open[0]!=='all'){
      var t=bodies().filter(function(b){return b.getAttribute('data-id')===state.open[0];})[0];
      if(t&&t.scrollIntoView) t.scrollIntoView();
    }
  }
  q.addEventListener('input',function(){state.q=q.value;apply();writeHash();});
  chips.forEach(function(c){c.addEventListener('click',function(){
    var v=c.getAttribute('data-verdict'), i=state.verdicts.indexOf(v);
    if(i>=0) state.verdicts.splice(i,1); else state.verdicts.push(v);
    apply(); writeHash();
  });});
  [].slice.call(document.querySelectorAll('.card')).forEach(function(c){c.addEventListener('click',function(){
    var v=c.getAttribute('data-verdict');
    state.verdicts=(state.verdicts.length===1&&state.verdicts[0]===v)?[]:[v]; apply(); writeHash();
  });});
  table.addEventListener('click',function(ev){
    var row=ev.target.closest('tr.row'); if(!row) return;
    if(window.getSelection&&String(window.getSelection())) return;
    row.parentNode.classList.toggle('open');
  });
  var ex=document.getElementById('expand'), expanded=false;
  ex.addEventListener('click',function(){
    expanded=!expanded; bodies().forEach(function(b){b.classList.toggle('open',expanded);});
    ex.textContent=expanded?'Collapse all':'Expand all';
  });
  function sortBy(th,dir){
    var col=+th.getAttribute('data-col'), num=th.getAttribute('data-type')==='num';
    if(!dir) dir=th.getAttribute('aria-sort')==='ascending'?-1:1;
    state.sort=(dir<0?'-':'')+th.getAttribute('data-key');
    ths.forEach(function(h){h.removeAttribute('aria-sort');});
    th.setAttribute('aria-sort',dir>0?'ascending':'descending');
    var key=function(b){var c=b.rows[0].cells[col]; return c?(c.getAttribute('data-sort')||''):'';};
    bodies().map(function(b,i){return [key(b),i,b];}).sort(function(a,b){
      var x=a[0],y=b[0];
      if(num){
        var ex=x===''||isNaN(+x), ey=y===''||isNaN(+y);
        if(ex||ey) return ex&&ey?a[1]-b[1]:(ex?1:-1);
        return ((+x)-(+y))*dir||a[1]-b[1];
      }
      return x.localeCompare(y)*dir||a[1]-b[1];
    }).forEach(function(t){table.appendChild(t[2]);});
  }
  ths.forEach(function(th){
    th.addEventListener('click',function(){sortBy(th);writeHash();});
    th.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();sortBy(th);writeHash();}});
  });
  [].slice.call(document.querySelectorAll('a[data-open]')).forEach(function(a){a.addEventListener('click',function(){
    setTimeout(load,0);
  });});
  window.addEventListener('hashchange',load);
  load();
})();
